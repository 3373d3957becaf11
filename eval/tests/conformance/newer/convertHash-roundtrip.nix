# hand-written: builtins.convertHash, new in Nix 2.19: converting a hashString result there and back
let
  h = builtins.hashString "sha256" "conformance";
  sri = builtins.convertHash { hash = h; hashAlgo = "sha256"; toHashFormat = "sri"; };
in builtins.convertHash { hash = sri; toHashFormat = "base16"; } == h
