(derivation { name = "lp"; system = "x86_64-linux"; builder = "/bin/sh"; srcs = [ ../data/text.txt ../data/tree/a.txt ]; }).drvPath
