let d = derivation { name = "ts"; system = "x86_64-linux"; builder = "/bin/sh"; }; in builtins.attrNames (builtins.getContext (toString d))
