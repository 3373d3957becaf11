# hand-written: pipe operators, experimental since Nix 2.24: without the feature they are refused
1 |> toString
