[ (builtins.any (x: x > 2) [ 1 2 3 ]) (builtins.all (x: x > 2) [ 1 2 3 ]) (builtins.any (x: x) [ ]) (builtins.all (x: x) [ ]) ]
