let f = x: if x > 2 then abort "too big: ${toString x}" else f (x + 1); in f 0
