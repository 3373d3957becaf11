builtins.path { path = ../data/text.txt; name = "t"; sha256 = "1sjr5pc1fhwh6cd5c2wyv9wvkm0iq6w6k3kxxmpbimvsjmkk49lc"; }
