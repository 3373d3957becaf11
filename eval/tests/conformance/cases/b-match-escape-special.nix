[ (builtins.match "a\\.b\\*" "a.b*") (builtins.match "\\(\\[\\{x}]\\)" "([{x}])") (builtins.match "a\\|b\\?\\^\\$" "a|b?^$") ]
