# hand-written: current Nix quotes the reserved words if/then/else/assert/with/let/in/rec/inherit when printing
# attribute names, but not `or`; Nix 2.8 quoted only `if`.
builtins.listToAttrs (map (n: { name = n; value = 1; }) [ "if" "or" "let" "inherit" "rec" "then" "in" "with" "x'" "a-b" ])
