builtins.split "(a*)" "baac"
