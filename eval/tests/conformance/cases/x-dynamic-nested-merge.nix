let n = "a"; in { ${n}.b = 1; c = 2; }
