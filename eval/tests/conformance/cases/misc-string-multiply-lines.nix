builtins.concatStringsSep "\n" [ "a" "b" ]
