builtins.match "b" "abc"
