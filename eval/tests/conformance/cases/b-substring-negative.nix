builtins.substring (-1) 1 "hello"
