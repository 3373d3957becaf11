builtins.tryEval (abort "still aborts")
