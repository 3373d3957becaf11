let s = { self = s; v = 1; }; in s.self.self.v
