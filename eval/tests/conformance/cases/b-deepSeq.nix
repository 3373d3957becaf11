builtins.deepSeq [ (throw "deep") ] 2
