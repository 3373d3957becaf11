map (f: f 2) [ (x: x + 1) (x: x * 10) builtins.toString ]
