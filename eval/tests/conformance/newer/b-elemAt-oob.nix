# hand-written: error wording of current Nix; Nix 2.8 says 'list index 2 is out of bounds'
builtins.elemAt [ 1 2 ] 2
