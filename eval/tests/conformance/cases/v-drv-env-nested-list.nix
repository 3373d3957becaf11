(derivation { name = "nl"; system = "x86_64-linux"; builder = "/bin/sh"; l = [ [ "a" "b" ] "c" ]; }).drvPath
