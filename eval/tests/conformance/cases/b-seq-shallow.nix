builtins.seq [ (throw "not forced") ] 2
