builtins.toJSON "é\u{1}"
