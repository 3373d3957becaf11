builtins.fromJSON "[1e308, 2.5e-5, 123456789012]"
