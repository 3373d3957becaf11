import ../data/attrs.nix
