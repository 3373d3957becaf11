let s = { a = 1; }; in [ (s ? a || false) (s.b or 1 + 1) ]
