(derivation { name = "fs"; system = "x86_64-linux"; builder = "/bin/sh"; __structuredAttrs = true; outputHash = "sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM="; }).outPath
