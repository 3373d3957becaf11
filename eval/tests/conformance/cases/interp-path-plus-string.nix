"${./../data/text.txt}" + "-suffix"
