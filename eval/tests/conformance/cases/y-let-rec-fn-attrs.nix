let f = { n ? 0 }: if n > 3 then n else f { n = n + 1; }; in f { }
