builtins.pathExists "${toString ../data}/text.txt"
