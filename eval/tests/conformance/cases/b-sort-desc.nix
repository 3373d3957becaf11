builtins.sort (a: b: a > b) [ 1 5 2 4 3 ]
