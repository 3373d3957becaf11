builtins.zipAttrsWith (n: vs: { inherit n vs; }) [ { a = 1; b = 2; } { a = 3; } { c = 4; } ]
