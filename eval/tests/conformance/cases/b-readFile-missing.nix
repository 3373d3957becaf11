builtins.readFile ../data/nope.txt
