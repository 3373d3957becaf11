let a = 1; in rec { a = 2; b = a; inherit a; }
