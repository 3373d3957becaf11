builtins.fromTOML ''
  [[p]]
  n = "a"
  [[p]]
  n = "b"
  [p.q]
  x = 1
''
