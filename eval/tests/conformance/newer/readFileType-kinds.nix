# hand-written: builtins.readFileType, new in Nix 2.14
map builtins.readFileType [ ../data/tree/a.txt ../data/tree ../data/tree/link ]
