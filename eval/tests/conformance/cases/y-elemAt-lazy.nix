builtins.elemAt [ (throw "no") 2 ] 1
