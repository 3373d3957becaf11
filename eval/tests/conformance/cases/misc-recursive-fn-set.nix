let s = { f = n: if n == 0 then 1 else n * s.f (n - 1); }; in s.f 10
