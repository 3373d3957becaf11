(rec { a = { b = 2; }; c = a.b; }).c
