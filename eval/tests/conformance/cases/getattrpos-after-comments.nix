let s = {
  # first
  a = 1; /* second */    b
    = 2;
}; p = builtins.unsafeGetAttrPos "b" s; in [ p.line p.column ]
