builtins.filterSource (p: t: true) ../data/tree
