builtins.fromTOML ''
  int = 0x1F
  oct = 0o17
  bin = 0b101
  flt = 6.02e23
  neg = -1_000
  ml = """
  two
  lines"""
  arr = [ [ 1, 2 ], [ "a" ] ]
  "quoted key" = true
  a.b.c = 1
''
