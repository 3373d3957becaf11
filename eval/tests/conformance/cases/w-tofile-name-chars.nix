builtins.toFile "a-b_c.d+e=f" "x"
