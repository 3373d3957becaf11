"prefix-" + toString ./x == "prefix-" + toString ./x
