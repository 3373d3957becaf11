# hand-written: builtins.parseFlakeRef, new in Nix 2.16 (flakes); expectation from the current manual
builtins.parseFlakeRef "github:NixOS/nixpkgs/23.05?dir=lib"
