# hand-written: with the experimental feature parse-toml-timestamps, TOML dates and times are tagged strings (current Nix)
# flags: parse-toml-timestamps
builtins.fromTOML "a = 1979-05-27T07:32:00.1Z\nb = 07:32:00\nc = 1979-05-27"
