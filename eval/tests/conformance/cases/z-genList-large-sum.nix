builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x * x) 1000)
