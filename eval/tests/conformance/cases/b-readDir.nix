builtins.readDir ../data/tree
