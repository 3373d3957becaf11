let d = derivation { name = "withsrc"; system = "x86_64-linux"; builder = "/bin/sh"; src = ../data/text.txt; }; in [ d.outPath d.drvPath ]
