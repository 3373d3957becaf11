with builtins; [ (replaceStrings [ "a" "b" ] [ "A" "B" ] "abcab") (replaceStrings [ "oo" ] [ "0" ] "foooo") (replaceStrings [ "x" ] [ "yy" ] "") ]
