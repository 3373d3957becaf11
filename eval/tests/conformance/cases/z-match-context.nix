let f = builtins.toFile "m" "x"; in builtins.match "(.*)" f
