map toString [ 1 "s" true false null [ 1 [ 2 "x" ] ] 1.5 (-3) ]
