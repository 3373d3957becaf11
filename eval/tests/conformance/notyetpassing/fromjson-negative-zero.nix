# A JSON -0 has no fraction or exponent, so it is an integer (0), as in Nix; serde_json reads it as the float -0.
builtins.fromJSON "[ -0, -0.0 ]"
