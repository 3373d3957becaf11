# hand-written: the dynamic attributes of a second literal for the same attribute are kept (current Nix; 2.8 dropped them)
{ set1 = { a = 1; }; set1 = { "${"b" + ""}" = 2; }; set2.a = 1; set2."${"b"}" = 2; }
