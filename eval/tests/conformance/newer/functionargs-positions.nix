# hand-written: functionArgs gives each formal the position of its name (current Nix)
let p = builtins.unsafeGetAttrPos "foo" (builtins.functionArgs ({ bar, foo ? 1 }: bar)); in [ p.line p.column ]
