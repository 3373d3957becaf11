# hand-written: current Nix's derivation wrapper takes the first output with builtins.head, whose error wording changed; Nix 2.8 says 'list index 0 is out of bounds'
(derivation { name = "eo"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ ]; }).outPath
