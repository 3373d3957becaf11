with builtins; [ (add 1 2) (sub 5 3) (mul 4 5) (div 9 2) (div 9.0 2) (sub 7 (mul 3 (div 7 3))) ]
