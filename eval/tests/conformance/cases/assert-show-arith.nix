let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = 5; in assert x - 1 > 20 || !(x <= 3) && x * 2 / 1 >= 100; x
