builtins.length (builtins.genList (x: x) 200000)
