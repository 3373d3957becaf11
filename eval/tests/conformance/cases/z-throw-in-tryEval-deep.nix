builtins.tryEval (builtins.deepSeq { a = [ (throw "deep") ]; } 1)
