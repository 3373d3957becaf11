let s = { }; k = "a"; in s.${k} or "dflt"
