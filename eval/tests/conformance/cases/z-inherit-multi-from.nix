let s = { a = 1; b = 2; }; t = { c = 3; }; in { inherit (s) a b; inherit (t) c; }
