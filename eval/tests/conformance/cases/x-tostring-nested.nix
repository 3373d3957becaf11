toString { __toString = self: toString self.v; v = { outPath = "inner"; }; }
