builtins.stringLength (builtins.concatStringsSep "" (builtins.genList (x: "ab") 5000))
