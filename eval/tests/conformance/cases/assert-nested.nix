let check = x: assert x > 0; x; in [ (check 1) (check 2) ]
