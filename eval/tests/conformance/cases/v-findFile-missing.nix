builtins.findFile [ { prefix = "d"; path = toString ../data; } ] "nope/x"
