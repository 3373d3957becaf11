import ../data/broken.nix
