(derivation { name = "bm"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "bogus"; outputHash = builtins.hashString "sha256" ""; outputHashAlgo = "sha256"; }).outPath
