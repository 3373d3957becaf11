let d = derivation { name = "s"; system = "x86_64-linux"; builder = "/bin/sh"; }; in [ (d == d.out) (d.out.out.outPath == d.outPath) ]
