builtins.scopedImport { builtins = { x = 1; }; } ../data/scoped.nix
