let
  fo = derivation { name = "fo"; system = "x86_64-linux"; builder = "/bin/sh"; outputHashAlgo = "sha256"; outputHash = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"; extra = "changes drv only"; };
  b = derivation { name = "b"; system = "x86_64-linux"; builder = "/bin/sh"; src = fo; };
in [ fo.outPath b.outPath ]
