builtins.substring 0 (builtins.stringLength builtins.storeDir) (builtins.toFile "x" "y") == builtins.storeDir
