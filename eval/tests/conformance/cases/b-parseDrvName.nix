builtins.parseDrvName "hello-world-1.2.3-beta"
