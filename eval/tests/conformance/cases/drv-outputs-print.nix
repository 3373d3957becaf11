let d = derivation { name = "o"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "bin" ]; }; in map (o: o.outputName) d.all
