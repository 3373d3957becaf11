builtins.hashFile "sha256" ../data/text.txt
