let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = 5; in assert s ? a.${k} -> -x >= 1.5; x
