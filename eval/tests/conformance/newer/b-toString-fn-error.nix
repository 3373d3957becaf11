# hand-written: error wording of current Nix (coercion errors show the value); Nix 2.8 stops after the type; current Nix prints a lambda as «lambda @ FILE:LINE:COL»
toString (x: x)
