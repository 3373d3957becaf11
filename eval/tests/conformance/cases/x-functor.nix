let f = { __functor = self: x: self.base + x; base = 10; }; in [ (f 1) (builtins.isFunction f) (map f [ 1 2 ]) ]
