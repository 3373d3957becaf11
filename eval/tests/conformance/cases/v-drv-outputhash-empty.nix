(derivation { name = "oe"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashAlgo = "sha256"; outputHash = ""; }).outPath
