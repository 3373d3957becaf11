let d = derivation { name = "two"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "lib" ]; }; in builtins.toJSON [ d.lib d ]
