builtins.typeOf (1 + 1.0)
