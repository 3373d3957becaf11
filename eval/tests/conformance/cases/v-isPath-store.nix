builtins.isPath (builtins.toFile "p" "x")
