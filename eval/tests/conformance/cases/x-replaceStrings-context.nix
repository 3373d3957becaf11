let f = builtins.toFile "r" "x"; in builtins.attrNames (builtins.getContext (builtins.replaceStrings [ "a" ] [ f ] "bab"))
