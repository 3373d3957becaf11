# hand-written: pipe operators, experimental since Nix 2.24 (pipe-operators feature)
# flags: pipe-operators
[ 1 2 3 ] |> map (x: x * 2) |> builtins.foldl' builtins.add 0
