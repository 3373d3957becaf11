map (n: builtins.parseDrvName n) [ "a-1" "a-b-c" "foo-1.0-rc1" "-1" "x-" ]
