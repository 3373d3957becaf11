# hand-written: builtins.readFileType, new in Nix 2.14: agrees with readDir for every entry
let d = builtins.readDir ../data/tree; in builtins.attrValues (builtins.mapAttrs (n: t: builtins.readFileType (../data/tree + "/${n}") == t) d)
