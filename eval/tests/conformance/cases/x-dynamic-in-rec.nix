let n = "k"; in rec { ${n} = 1; other = 2; }
