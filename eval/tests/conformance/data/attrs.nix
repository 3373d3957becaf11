let x = 1; in { inherit x; y = x + 1; }
