map builtins.stringLength [ "" "abc" "héllo" ]
