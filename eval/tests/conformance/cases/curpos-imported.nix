let p = (import ../data/curpos.nix).pos; in [ (baseNameOf p.file) p.line p.column ]
