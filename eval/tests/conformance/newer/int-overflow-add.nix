# hand-written: integer overflow is an error since Nix 2.25 (2.8 wraps around)
9223372036854775807 + 1
