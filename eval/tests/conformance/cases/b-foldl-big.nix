builtins.foldl' builtins.add 0 (builtins.genList (x: x) 100000)
