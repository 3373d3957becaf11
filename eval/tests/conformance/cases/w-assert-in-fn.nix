let f = x: assert builtins.isInt x; x * 2; in f 21
