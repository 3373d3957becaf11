let d = derivation { name = "io"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "lib" ]; }; in "${d.lib}/lib"
