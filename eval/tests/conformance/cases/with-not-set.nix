with 1; 2
