let lib = import ../data/lib.nix; in [ (lib.double 21) lib.name ]
