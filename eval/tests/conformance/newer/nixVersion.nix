# hand-written: builtins.nixVersion names the Nix whose behaviour the evaluator follows
builtins.nixVersion
