(derivation { name = "p"; system = "x86_64-linux"; builder = "/bin/sh"; }).all == [ ]
