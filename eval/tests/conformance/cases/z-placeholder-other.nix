builtins.placeholder "bin"
