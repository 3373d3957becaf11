builtins.stringLength "é☃"
