# hand-written: builtins.convertHash, new in Nix 2.19; expectation from the current manual
builtins.convertHash { hash = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; toHashFormat = "nix32"; }
