let d = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; }; in [ d.type d.name d.system d.outputName (builtins.attrNames d) ]
