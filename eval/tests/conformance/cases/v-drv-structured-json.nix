(derivation { name = "sj"; system = "x86_64-linux"; builder = "/bin/sh"; __structuredAttrs = true; s = "str"; i = 1; f = 1.5; b = true; n = null; l = [ 1 "a" ]; a = { x = [ ]; }; }).drvPath
