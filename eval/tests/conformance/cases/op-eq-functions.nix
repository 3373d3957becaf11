let f = x: x; in [ (f == f) ([ f ] == [ f ]) ]
