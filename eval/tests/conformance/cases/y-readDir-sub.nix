builtins.readDir ../data/tree/sub
