let p = builtins.unsafeGetAttrPos "b" { a = 1;
  b = 2; }; in [ (baseNameOf p.file) p.line p.column ]
