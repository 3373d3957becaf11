let xs = [ 1 2 3 ]; in [ xs xs ]
