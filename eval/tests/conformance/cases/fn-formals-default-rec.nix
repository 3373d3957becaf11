let f = { a ? b + 1, b ? 1 }: a; in f { }
