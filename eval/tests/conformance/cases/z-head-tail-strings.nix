[ (builtins.head [ "a" "b" ]) (builtins.tail [ "a" ]) ]
