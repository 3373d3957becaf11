builtins.toJSON "\u{7f}\t\r\n\\\"/"
