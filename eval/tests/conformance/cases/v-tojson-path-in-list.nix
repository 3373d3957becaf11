builtins.toJSON [ ../data/tree/a.txt ]
