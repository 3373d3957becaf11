builtins.seq (throw "forced") 2
