builtins.match "a\\s" "a "
