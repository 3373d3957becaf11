builtins.seq [ (throw "no") ] "lazy elements"
