(derivation { name = "arm"; system = "aarch64-linux"; builder = "/bin/sh"; }).outPath
