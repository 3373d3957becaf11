let s = { a = { b = 1; }; }; f = x: y: x; k = "a"; in
let x = 1; in assert builtins.elem x (map (y: y + 1) [ x ]); x
