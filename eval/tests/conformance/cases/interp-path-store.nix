"${./../data/text.txt}"
