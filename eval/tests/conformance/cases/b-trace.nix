builtins.trace "to stderr" 5
