# hand-written: pipe operators, experimental since Nix 2.24: they bind more loosely than arithmetic
# flags: pipe-operators
1 + 2 |> toString
