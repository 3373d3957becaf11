# hand-written: foldl' forces each result of the function, not the initial accumulator (current Nix)
builtins.foldl' (_: x: x) (throw "never forced") [ 1 42 ]
