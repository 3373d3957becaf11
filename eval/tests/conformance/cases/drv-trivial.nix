let d = derivation { name = "triv"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo hello > $out" ]; }; in [ d.outPath d.drvPath ]
