let f = { a, b ? a * 2 }: b; in f { a = 4; }
