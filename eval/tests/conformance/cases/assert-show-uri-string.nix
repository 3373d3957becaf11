let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = 1; in assert x == http://a.b/c || x == "q\"\n"; x
