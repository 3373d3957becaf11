# hand-written: integer overflow is an error since Nix 2.25 (2.8 wraps around)
builtins.add 9223372036854775807 9223372036854775807
