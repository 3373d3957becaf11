let p = builtins.unsafeGetAttrPos "x" (builtins.listToAttrs [ { name = "x"; value = 1; } ]); in [ (baseNameOf p.file) p.line p.column ]
