let s = { a.b = 5; }; in { inherit (s.a) b; }
