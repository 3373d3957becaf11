builtins.fromJSON ''{"-0": "-0", "a": [-0, "x\"-0", -0.0, -0e1]}''
