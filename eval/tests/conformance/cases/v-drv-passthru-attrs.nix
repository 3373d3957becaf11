let d = derivation { name = "pt"; system = "x86_64-linux"; builder = "/bin/sh"; extra = "e"; n = 3; }; in [ d.extra d.n ]
