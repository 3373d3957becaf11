# hand-written: error wording of current Nix (typed errors name the value, since Nix 2.20); Nix 2.8 says 'value is an integer while a list was expected'
1 ++ [ 2 ]
