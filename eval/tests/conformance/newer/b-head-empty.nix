# hand-written: error wording of current Nix; Nix 2.8 says 'list index 0 is out of bounds'
builtins.head [ ]
