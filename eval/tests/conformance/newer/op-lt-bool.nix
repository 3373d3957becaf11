# hand-written: error wording of current Nix (values shown); Nix 2.8 stops after the types
true < false
