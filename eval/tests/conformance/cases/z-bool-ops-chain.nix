[ (true && true && false) (false || false || true) (!true || !false) (true -> false -> true) ]
