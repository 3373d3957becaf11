# hand-written: pipe operators, experimental since Nix 2.24 (pipe-operators feature)
# flags: pipe-operators
toString <| builtins.length <| [ 1 2 3 ]
