# hand-written: current Nix shows a lambda in an error message as «lambda NAME @ FILE:LINE:COL»
let f = x: x; in f + 1
