"a" + ../data/text.txt
