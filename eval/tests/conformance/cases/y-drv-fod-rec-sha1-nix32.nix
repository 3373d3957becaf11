(derivation { name = "fod-nix32"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashMode = "recursive"; outputHash = "sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA="; }).outPath
