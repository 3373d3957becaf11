let a = builtins.toFile "a" "x"; in builtins.toFile "b" "ref ${a}"
