# hand-written: error wording of current Nix; Nix 2.8 says "... arguments to 'replaceStrings' ..."
builtins.replaceStrings [ "a" ] [ ] "a"
