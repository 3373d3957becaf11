let x = rec { a = 1; b = { c = a; }; }; in x.b.c
