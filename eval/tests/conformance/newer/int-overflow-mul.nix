# hand-written: integer overflow is an error since Nix 2.25 (2.8 wraps around)
4611686018427387904 * 2
