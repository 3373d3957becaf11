let d = derivation { name = "env"; system = "x86_64-linux"; builder = "/bin/sh"; i = 1; f = 1.5; t = true; fa = false; n = null; l = [ 1 "a" null true ]; p = "str"; }; in d.drvPath
