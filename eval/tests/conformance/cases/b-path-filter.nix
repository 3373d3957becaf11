builtins.path { path = ../data/tree; name = "filtered"; filter = p: t: t != "symlink"; }
