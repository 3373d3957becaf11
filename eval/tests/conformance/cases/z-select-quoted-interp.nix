let k = "x y"; s = { "x y" = 1; }; in [ s.${k} s."x y" (s ? "x y") ]
