let d = derivation { name = "in"; system = "x86_64-linux"; builder = "/bin/sh"; __ignoreNulls = true; skipped = null; kept = "k"; }; in [ d.outPath d.drvPath ]
