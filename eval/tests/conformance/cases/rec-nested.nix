rec { x = 1; y = { z = x + 1; }; }
