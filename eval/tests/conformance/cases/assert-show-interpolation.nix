let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = 1; in assert "a${toString x}b" == "${s.a.c or "z"}"; x
