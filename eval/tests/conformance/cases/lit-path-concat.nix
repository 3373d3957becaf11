baseNameOf (./foo + "/bar")
