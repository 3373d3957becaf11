builtins.stringLength "a\tb\nc"
