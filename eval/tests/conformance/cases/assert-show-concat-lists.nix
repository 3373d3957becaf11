let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = [ ]; in assert x ++ [ null true ] == [ ] && x == s.a.c or [ 1 ]; x
