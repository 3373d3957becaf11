import ../data/rel.nix
