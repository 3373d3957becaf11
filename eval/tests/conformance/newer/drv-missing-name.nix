# hand-written: error wording of current Nix (derivationStrict reports the missing attribute plainly); Nix 2.8 adds "for call to 'derivationStrict'"
derivation { system = "x86_64-linux"; builder = "/bin/sh"; }
