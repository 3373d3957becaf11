builtins.typeOf (import "${toString ../data}/value.nix")
