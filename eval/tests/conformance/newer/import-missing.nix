# hand-written: error wording of current Nix (source accessors); Nix 2.8 says "getting status of ..."
import ../data/does-not-exist.nix
