builtins.genList (i: i * 10) 5
