# hand-written: error wording of current Nix; Nix 2.8 says "'f' at FILE:LINE:COL called with ..."
let f = { a }: a; in f { a = 1; b = 2; }
