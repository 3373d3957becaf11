builtins.hasContext (baseNameOf (builtins.toFile "b" "x"))
