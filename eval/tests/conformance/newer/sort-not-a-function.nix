# hand-written: sort checks that its first argument is a function even for one element (current Nix)
builtins.sort 1 [ "foo" ]
