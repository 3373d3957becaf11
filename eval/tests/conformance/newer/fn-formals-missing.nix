# hand-written: error wording of current Nix; Nix 2.8 says "'f' at FILE:LINE:COL called without ..."
let f = { a, b }: a; in f { a = 1; }
