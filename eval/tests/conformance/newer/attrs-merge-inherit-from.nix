# hand-written: two literals for one attribute merge with their `inherit (e)` sources (current Nix; 2.8 rejected it)
let x.c = 3; y.d = 4; in { inner = { inherit (y) d; }; inner = { inherit (x) c; }; }
