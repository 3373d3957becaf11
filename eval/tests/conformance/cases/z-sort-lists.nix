builtins.sort builtins.lessThan [ [ 2 ] [ 1 3 ] [ 1 ] [ ] ]
