(derivation { name = "pl"; system = "x86_64-linux"; builder = "/bin/sh"; preferLocalBuild = true; allowSubstitutes = false; }).drvPath
