# hand-written: error wording of current Nix (typed errors name the value, since Nix 2.20); Nix 2.8 says 'value is a string while an integer was expected' (a * b is builtins.mul)
"a" * 2
