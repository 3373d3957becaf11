with builtins; [ (floor 1.0e15) (ceil (-2.5)) (floor 0.0) (builtins.typeOf (floor 2.5)) ]
