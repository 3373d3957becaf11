# hand-written: each level of toJSON counts towards max-call-depth (10,000 by default), as in current Nix
builtins.toJSON (builtins.foldl' (tail: head: { inherit head tail; }) null (builtins.genList (x: x) 20000))
