builtins.filter (x: x - x / 2 * 2 == 0) [ 1 2 3 4 5 6 ]
