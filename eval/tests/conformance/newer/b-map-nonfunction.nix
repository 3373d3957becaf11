# hand-written: current Nix forces map's function argument first; Nix 2.8 fails at the call
builtins.map 1 [ 1 ]
