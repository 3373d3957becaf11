"${../data/tree}"
