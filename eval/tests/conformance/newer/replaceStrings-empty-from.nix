# hand-written: current Nix inserts the replacement of an empty pattern at every position (Nix 2.8 fails)
[ (builtins.replaceStrings [ "" ] [ "X" ] "abc") (builtins.replaceStrings [ "" ] [ "X" ] "") (builtins.replaceStrings [ "b" "" ] [ "B" "-" ] "abc") ]
