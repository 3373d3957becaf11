let
  a = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; };
  b = derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; dep = a.dev; };
in [ b.outPath b.drvPath ]
