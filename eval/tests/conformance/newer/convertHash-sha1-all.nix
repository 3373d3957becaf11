# hand-written: builtins.convertHash, new in Nix 2.19; every output format for one sha1 hash
map (f: builtins.convertHash { hash = "sha1-qvTGHdzF6KLavt4PO0gs2a6pQ00="; toHashFormat = f; }) [ "base16" "nix32" "base64" "sri" ]
