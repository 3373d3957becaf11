[ (builtins.elemAt [ 10 20 30 ] 0) (builtins.elemAt [ 10 20 30 ] 2) ]
