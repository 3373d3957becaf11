let f = { }: 1; in f { }
