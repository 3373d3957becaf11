let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = 1; in assert x == 2.50 || x < 0.1; x
