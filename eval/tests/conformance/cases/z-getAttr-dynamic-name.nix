let n = "b"; in builtins.getAttr n { b = "found"; }
