baseNameOf (./. + "x")
