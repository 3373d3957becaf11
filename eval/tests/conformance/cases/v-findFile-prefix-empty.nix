baseNameOf (builtins.findFile [ { prefix = ""; path = toString ../data/dir; } ] "default.nix")
