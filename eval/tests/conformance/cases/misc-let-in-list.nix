[ (let x = 1; in x) (with { y = 2; }; y) (assert true; 3) ]
