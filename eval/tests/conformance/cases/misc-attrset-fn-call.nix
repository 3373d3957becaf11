let f = { x }: x; s = { x = 5; }; in f s
