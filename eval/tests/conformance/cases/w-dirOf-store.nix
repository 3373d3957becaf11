dirOf (builtins.toFile "d" "x")
