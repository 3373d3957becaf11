# hand-written: builtins.convertHash, new in Nix 2.19 (base64 output has no algorithm prefix)
builtins.convertHash { hash = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"; hashAlgo = "sha1"; toHashFormat = "base64"; }
