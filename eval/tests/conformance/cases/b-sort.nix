builtins.sort builtins.lessThan [ 5 3 9 1 1 0 (-2) ]
