import ../data/value.nix
