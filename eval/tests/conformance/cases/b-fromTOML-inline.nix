builtins.fromTOML ''x = { y = 1, z = "w" }''
