let f = { a, b }: a - b; in f { b = 1; a = 10; }
