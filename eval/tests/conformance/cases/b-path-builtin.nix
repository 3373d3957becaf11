builtins.path { path = ../data/tree; name = "renamed"; }
