builtins.replaceStrings [ "aa" "a" ] [ "b" "c" ] "aaaaa"
