# hand-written: keys that cannot be ordered are an error, as in Nix's ordered set of keys
builtins.genericClosure { startSet = [ { key = 1; } { key = "s"; } ]; operator = x: [ ]; }
