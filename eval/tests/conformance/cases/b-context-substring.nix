let a = builtins.toFile "a" "1"; in builtins.hasContext (builtins.substring 0 3 a)
