with builtins; [ (ceil 1.2) (floor 1.8) (ceil (-1.2)) (floor (-1.8)) (ceil 3) (floor 3.0) ]
