builtins.toJSON { d = derivation { name = "j"; system = "x86_64-linux"; builder = "/bin/sh"; }; }
