[ (builtins.length [ 1 2 3 ]) (builtins.head [ 1 2 ]) (builtins.tail [ 1 2 3 ]) (builtins.length [ ]) ]
