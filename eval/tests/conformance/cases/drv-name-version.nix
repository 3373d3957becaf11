(derivation { name = "hello-2.12"; system = "x86_64-linux"; builder = "/bin/sh"; }).outPath
