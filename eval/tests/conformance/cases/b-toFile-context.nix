let f = builtins.toFile "ctx" "c"; in builtins.attrNames (builtins.getContext "${f}")
