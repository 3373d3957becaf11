[ (true || false && false) (!false && false) (false -> true || false) (1 < 2 == true) ]
