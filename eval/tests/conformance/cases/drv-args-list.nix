let d = derivation { name = "args"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-e" ../data/text.txt 1 ]; }; in d.drvPath
