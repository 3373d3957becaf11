let s = { a = 5; }; in -s.a
