# A JSON -0 has no fraction or exponent, so it is the integer 0; -0.0 stays a float.
builtins.fromJSON "[ -0, -0.0 ]"
