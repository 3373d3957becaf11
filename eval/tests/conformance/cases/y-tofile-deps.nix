builtins.toFile "deps" (builtins.toJSON { a = "${../data/text.txt}"; })
