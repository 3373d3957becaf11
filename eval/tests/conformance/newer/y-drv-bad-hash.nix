# hand-written: error wording of current Nix (hash 'algorithm', since Nix 2.20); Nix 2.8 says 'hash type'
(derivation { name = "bh"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashAlgo = "sha256"; outputHash = "xyz"; }).outPath
