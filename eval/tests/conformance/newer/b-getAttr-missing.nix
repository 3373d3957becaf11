# hand-written: error wording of current Nix (the builtin's name moved to the trace); Nix 2.8 adds "for call to 'getAttr'"
builtins.getAttr "b" { a = 1; }
