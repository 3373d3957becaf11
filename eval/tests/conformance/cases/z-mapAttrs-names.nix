builtins.mapAttrs (name: value: name) { b = 1; a = 2; }
