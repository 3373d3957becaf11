let x = 1; f = x: x + 1; in f 10
