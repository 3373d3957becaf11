with builtins; [ (split "," "a,b,c") (split "(,)" "a,b") (split "x" "abc") (split "([a-z])" "1a2b3") ]
