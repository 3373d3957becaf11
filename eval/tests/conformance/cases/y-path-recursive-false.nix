builtins.path { path = ../data/text.txt; name = "flat"; recursive = false; }
