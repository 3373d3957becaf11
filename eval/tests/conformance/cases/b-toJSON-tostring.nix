builtins.toJSON { __toString = self: "str"; }
