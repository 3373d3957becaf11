let d = derivation { name = "so"; system = "x86_64-linux"; builder = "/bin/sh"; __structuredAttrs = true; outputs = [ "out" "doc" ]; }; in [ d.doc.outPath d.drvPath ]
