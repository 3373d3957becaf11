builtins.toFile "hello.txt" "hello\n"
