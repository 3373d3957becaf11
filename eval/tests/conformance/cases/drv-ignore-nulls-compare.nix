let
  base = { name = "cmp"; system = "x86_64-linux"; builder = "/bin/sh"; __ignoreNulls = true; };
in (derivation (base // { x = null; })).drvPath == (derivation base).drvPath
