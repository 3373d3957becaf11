[ 1 (throw "x") ] == [ 2 (throw "y") ]
