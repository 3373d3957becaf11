let
  a = derivation { name = "sa-dep"; system = "x86_64-linux"; builder = "/bin/sh"; };
in (derivation { name = "sa2"; system = "x86_64-linux"; builder = "/bin/sh"; __structuredAttrs = true; deps = { inherit a; list = [ a 1.5 null ]; }; }).drvPath
