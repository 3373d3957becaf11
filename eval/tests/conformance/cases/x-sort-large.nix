let l = builtins.genList (i: builtins.bitXor (i * 7919) 5381 - i * 31) 200; s = builtins.sort (a: b: a < b) l; in [ (builtins.head s) (builtins.elemAt s 100) (builtins.length s) ]
