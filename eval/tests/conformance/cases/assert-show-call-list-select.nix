let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = 0; in assert f x [ 1 "a" ] == s.a.b or 2; x
