builtins.parseDrvName "just-a-name"
