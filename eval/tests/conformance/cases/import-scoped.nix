builtins.scopedImport { x = 7; } ../data/scoped.nix
