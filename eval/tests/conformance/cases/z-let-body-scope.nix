let a = 1; in let b = a + 1; in with { c = b; }; [ a b c ]
