builtins.attrNames { "b" = 1; "a" = 2; "_" = 3; "Z" = 4; "aa" = 5; "a-" = 6; }
