(derivation { name = "ie"; system = "x86_64-linux"; builder = "/bin/sh"; outputHash = builtins.hashString "sha256" ""; outputHashAlgo = "sha256"; impureEnvVars = [ "http_proxy" ]; }).drvPath
