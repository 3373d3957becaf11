let a = "in"; in "out ${"mid ${a} mid"} out"
