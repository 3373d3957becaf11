let s = rec { a = b; b = a; }; in s.a
