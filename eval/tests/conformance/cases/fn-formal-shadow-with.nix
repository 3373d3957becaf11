with { a = 1; }; ({ a }: a) { a = 2; }
