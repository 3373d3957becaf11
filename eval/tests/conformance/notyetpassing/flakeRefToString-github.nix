# hand-written: builtins.flakeRefToString, new in Nix 2.16, exists only with the flakes experimental feature (which the evaluator lacks); expectation from the current manual
builtins.flakeRefToString { dir = "lib"; owner = "NixOS"; ref = "23.05"; repo = "nixpkgs"; type = "github"; }
