# hand-written: error wording of current Nix (coercion errors show the value); Nix 2.8 stops after the type; current Nix prints a named lambda as «lambda NAME @ FILE:LINE:COL»
(derivation { name = "x"; system = "x86_64-linux"; builder = "/bin/sh"; bad = x: x; }).outPath
