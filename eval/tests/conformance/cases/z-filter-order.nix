builtins.filter (x: x != 2) [ 3 2 1 2 0 ]
