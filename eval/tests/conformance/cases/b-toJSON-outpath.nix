builtins.toJSON { x = { outPath = "p"; ignored = 1; }; }
