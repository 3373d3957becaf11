# hand-written: strings may not hold NUL bytes (current Nix)
builtins.fromJSON "\"a\\u0000b\""
