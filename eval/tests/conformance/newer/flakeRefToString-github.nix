# hand-written: builtins.flakeRefToString, new in Nix 2.16, exists only with the flakes experimental feature; expectation from the current manual
# flags: flakes
builtins.flakeRefToString { dir = "lib"; owner = "NixOS"; ref = "23.05"; repo = "nixpkgs"; type = "github"; }
