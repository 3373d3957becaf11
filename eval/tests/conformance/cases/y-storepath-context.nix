let p = "${../data/text.txt}"; in builtins.getContext p
