import ../data/dir
