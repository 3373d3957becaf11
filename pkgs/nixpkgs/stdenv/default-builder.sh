# The builder of every stdenv.mkDerivation: structured attributes when the derivation has them, the setup
# script, then the phases.
if [ -e "${NIX_ATTRS_SH_FILE:-}" ]; then
    # shellcheck disable=SC1090
    source "$NIX_ATTRS_SH_FILE"
elif [ -f .attrs.sh ]; then
    # shellcheck disable=SC1091
    source .attrs.sh
fi
# shellcheck disable=SC1091
source "$stdenv/setup"
genericBuild
