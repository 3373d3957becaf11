baseNameOf (./. + "a/b")
