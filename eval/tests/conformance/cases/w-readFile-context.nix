let f = builtins.toFile "rc" "content"; in builtins.readFile f
