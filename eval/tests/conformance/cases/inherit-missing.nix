let s = { }; in { inherit (s) nope; }
