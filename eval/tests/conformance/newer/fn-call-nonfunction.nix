# hand-written: error wording of current Nix (shows the value); Nix 2.8 stops after the type
let x = 1; in x 2
