builtins.typeOf "${../data/tree/a.txt}"
