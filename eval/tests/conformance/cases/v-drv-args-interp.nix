(derivation { name = "ai"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${builtins.toFile "in" "x"}" ]; }).drvPath
