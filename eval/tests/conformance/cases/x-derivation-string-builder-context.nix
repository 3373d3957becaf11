let a = derivation { name = "tool"; system = "x86_64-linux"; builder = "/bin/sh"; }; in (derivation { name = "use"; system = "x86_64-linux"; builder = "${a}/bin/tool"; }).drvPath
