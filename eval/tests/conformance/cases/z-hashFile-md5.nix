builtins.hashFile "md5" ../data/tree/a.txt
