let d = derivation { name = "sc"; system = "x86_64-linux"; builder = "/bin/sh"; }; in builtins.hasContext (builtins.substring 0 0 "${d}")
