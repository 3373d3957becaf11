(derivation { name = "fl"; system = "x86_64-linux"; builder = "/bin/sh"; f = 0.1; g = 1.0e20; }).drvPath
