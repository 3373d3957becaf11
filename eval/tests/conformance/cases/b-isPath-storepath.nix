builtins.typeOf (builtins.toFile "a" "1")
