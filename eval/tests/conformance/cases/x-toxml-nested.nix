builtins.toXML { a = [ { b = null; } "s" ]; f = x: x; g = args@{ x, ... }: x; }
