let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = { }; in assert (if x == { } then false else true) || x // { } != { }; x
