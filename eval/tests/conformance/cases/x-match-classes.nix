[ (builtins.match "[[:digit:]]+" "123") (builtins.match "[[:alpha:]_][[:alnum:]_]*" "foo_1") (builtins.match "\\s*(\\S+)\\s*" "  x  ") ]
