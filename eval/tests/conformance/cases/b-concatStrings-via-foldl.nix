builtins.concatStringsSep "" (map toString (builtins.genList (x: x) 10))
