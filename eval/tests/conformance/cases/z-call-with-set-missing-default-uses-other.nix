let f = { a ? b, b ? 2 }: a; in f { b = 5; }
