builtins.attrNames { z = 1; a = 2; "m n" = 3; }
