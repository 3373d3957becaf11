# hand-written: builtins.warn, new in Nix 2.23 (the message goes to standard error)
builtins.warn "conformance warning" 42
