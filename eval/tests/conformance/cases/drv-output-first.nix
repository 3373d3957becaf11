let d = derivation { name = "first"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "dev" "out" ]; }; in [ d.outputName d.outPath ]
