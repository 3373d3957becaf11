let f = { a, b ? 3 }@args: builtins.attrNames args; in f { a = 1; }
