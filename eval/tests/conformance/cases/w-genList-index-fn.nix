builtins.genList (i: builtins.elemAt [ "x" "y" "z" ] i) 3
