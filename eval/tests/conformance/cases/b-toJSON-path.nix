builtins.toJSON ../data/text.txt
