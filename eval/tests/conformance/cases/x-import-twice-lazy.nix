let a = import ../data/lib.nix; in builtins.attrNames a
