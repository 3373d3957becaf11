''
	tab-indented
  space
''
