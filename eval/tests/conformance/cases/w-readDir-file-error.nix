builtins.readDir ../data/text.txt
