let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = 1; in assert s.${k}.b != 1 + 2 + x; x
