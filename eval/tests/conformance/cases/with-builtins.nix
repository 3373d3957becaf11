with builtins; length (attrNames { x = 1; y = 2; })
