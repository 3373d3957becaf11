let f = builtins.toFile "c" "x"; in builtins.length (builtins.attrNames (builtins.getContext (builtins.concatStringsSep f [ "a" "b" ])))
