builtins.match "x\\]" "x]"
