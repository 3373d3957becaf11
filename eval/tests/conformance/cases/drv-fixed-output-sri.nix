let d = derivation { name = "fo-sri"; system = "x86_64-linux"; builder = "/bin/sh"; outputHash = "sha256-WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM="; }; in d.outPath
