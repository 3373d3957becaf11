[ (baseNameOf (dirOf ../data/text.txt)) (builtins.typeOf (dirOf ./x)) ]
