# hand-written: integer overflow is an error since Nix 2.25; results that fit are unaffected
[ (9223372036854775806 + 1) (-9223372036854775807 - 1) (3037000499 * 3037000499) ]
