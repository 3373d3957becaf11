# hand-written: error wording of current Nix (a call-depth limit, max-call-depth); Nix 2.8 reports a stack overflow
let f = n: f (n + 1) + 1; in f 0
