builtins.toJSON { a = 1; b = [ true false null ]; c = "s\"\n"; d = 1.5; e = { }; f = [ ]; }
