let
  d = derivation { name = "ac"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; };
  s = builtins.appendContext "" { ${d.drvPath} = { outputs = [ "dev" ]; }; };
in builtins.getContext s
