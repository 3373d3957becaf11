let s = builtins.appendContext "x" { "/nix/store/rcl5i7k4xwa7zkij8lg4r4yxxgixdwzv-t.txt" = { path = true; }; }; in builtins.getContext s
