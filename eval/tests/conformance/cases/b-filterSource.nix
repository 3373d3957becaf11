builtins.filterSource (p: t: baseNameOf p != "sub") ../data/tree
