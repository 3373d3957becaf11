with builtins; [ (builtins.bitAnd 5 3) (div (-7) 2) ]
