let s = { a = false; }; in assert s.a; 1
