# hand-written: current nix-instantiate --eval still prints <LAMBDA>, <PRIMOP>, <PRIMOP-APP> and «repeated»
let s = { a = 1; }; l = [ 2 ]; in [ s s l l (x: x) builtins.map (builtins.map (x: x)) ]
