let
  a = derivation { name = "ca"; system = "x86_64-linux"; builder = "/bin/sh"; };
  b = derivation { name = "cb"; system = "x86_64-linux"; builder = "/bin/sh"; script = "cp ${a} $out"; };
  c = derivation { name = "cc"; system = "x86_64-linux"; builder = "/bin/sh"; deps = [ a b.out ]; };
in [ c.drvPath c.outPath ]
