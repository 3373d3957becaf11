builtins.fromTOML ''
  a = 1
  b = "str"
  c = [ 1, 2 ]
  [sect]
  d = true
  e = 1.5
  [sect.sub]
  f = 'lit'
  [[arr]]
  g = 1
  [[arr]]
  g = 2
''
