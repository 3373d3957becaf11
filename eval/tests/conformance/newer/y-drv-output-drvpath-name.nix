# hand-written: current Nix's derivationStrict refuses an output named drvPath; Nix 2.8 accepts it (and outPath becomes the .drv path)
(derivation { name = "od"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "drvPath" ]; }).outPath
