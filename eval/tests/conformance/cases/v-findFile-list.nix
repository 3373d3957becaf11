baseNameOf (builtins.findFile [ { prefix = "d"; path = toString ../data; } ] "d/text.txt")
