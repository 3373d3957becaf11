# hand-written: toJSON writes floats through nlohmann::json since Nix 2.12 (shortest round-trip form); Nix 2.8 used 6 significant digits
builtins.toJSON [ 0.1 1.0 1.0e20 (1.0 / 3) ]
