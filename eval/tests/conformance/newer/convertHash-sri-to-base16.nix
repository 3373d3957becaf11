# hand-written: builtins.convertHash, new in Nix 2.19; expectation from the current manual
builtins.convertHash { hash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; toHashFormat = "base16"; }
