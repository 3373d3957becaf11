with builtins; [ (substring 0 3 "hello") (substring 2 100 "hello") (substring 10 2 "hello") (substring 1 0 "hello") (substring 1 (-1) "hello") ]
