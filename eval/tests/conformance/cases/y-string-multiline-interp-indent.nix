let x = "a\n  b"; in ''
    first
      ${x}
    last
''
