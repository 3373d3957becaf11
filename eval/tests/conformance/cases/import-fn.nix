[ (import ../data/fn.nix { a = 1; }) (import ../data/fn.nix { a = 1; b = 10; }) ]
