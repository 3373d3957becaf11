{ text = builtins.readFile ./text.txt; here = baseNameOf ./.; }
