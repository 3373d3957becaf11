# hand-written: builtins.parseFlakeRef, new in Nix 2.16, exists only with the flakes experimental feature; expectation from the current manual
# flags: flakes
builtins.parseFlakeRef "github:NixOS/nixpkgs/23.05?dir=lib"
