let d = derivation { name = "a"; system = "x86_64-linux"; builder = "/bin/sh"; }; in "${d}" == d.outPath
