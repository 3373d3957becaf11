{ x = let y = 2; in y * 3; }
