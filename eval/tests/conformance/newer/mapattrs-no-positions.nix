# hand-written: attributes made by mapAttrs have no position, as in Nix
builtins.unsafeGetAttrPos "a" (builtins.mapAttrs (n: v: v) { a = 1; })
