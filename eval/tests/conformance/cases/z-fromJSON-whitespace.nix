builtins.fromJSON " \n { \"a\" : [ 1 , 2 ] } \n "
