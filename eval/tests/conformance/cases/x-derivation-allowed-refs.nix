(derivation { name = "ar"; system = "x86_64-linux"; builder = "/bin/sh"; allowedReferences = [ ]; passAsFile = [ "big" ]; big = "x"; }).drvPath
