let d = derivation { name = "nm"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "lib" ]; }; in [ d.lib.name d.name d.lib.type ]
