#!/usr/bin/env bash
# Runs nixpkgs' own library tests with fhskit in place of nix-instantiate, from a nixpkgs (or nixpkgs.lib)
# checkout outside this repository:
#   - lib/tests/misc.nix (the library's unit tests, as `nix-instantiate --eval --strict` runs them): must print `[ ]`;
#   - lib/tests/modules.sh (the module system's tests: a bash script calling `nix-instantiate` a few hundred times),
#     run unchanged with a `nix-instantiate` first on PATH that execs `fhskit instantiate`; its "N Pass / M Fail"
#     tally is printed.
# With --nix the installed nix-instantiate (Nix 2.8 from nix-bin) runs both instead, for comparison. Each tool gets
# its own chroot store in a temporary directory (modules.sh passes --read-write-mode).
#
# usage: eval/tests/upstream/nixpkgs-lib-tests.sh [--nix] [--fhskit BIN] TREE
#   TREE  a checkout holding lib/ (NixOS/nixpkgs, or its library mirror nix-community/nixpkgs.lib); docs/eval.md
#         names the commit measured
# Exit status: 0 when misc.nix gives [ ] and modules.sh fails no check, 1 otherwise, 2 on bad usage.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
fhskit="" nix=0 tree=""
while [ $# -gt 0 ]; do
    case "$1" in
        --fhskit) fhskit="$2"; shift ;;
        --nix) nix=1 ;;
        -*) echo "error: unknown option $1" >&2; exit 2 ;;
        *) tree="$1" ;;
    esac
    shift
done
if [ -z "$tree" ] || [ ! -f "$tree/lib/tests/modules.sh" ]; then
    echo "error: give a nixpkgs checkout (no lib/tests/modules.sh in '${tree}')" >&2
    exit 2
fi
tree="$(cd "$tree" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/fhskit-lib-tests.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/bin"
unset NIX_PATH
export HOME="$work/home"
if [ "$nix" = 1 ]; then
    command -v nix-instantiate >/dev/null || { echo "error: nix-instantiate not found (apt-get install nix-bin)" >&2; exit 2; }
    export NIX_CONFIG="build-users-group =
substituters =
store = local?root=$work/store"
    run=(nix-instantiate)
    echo "tool: $(nix-instantiate --version)"
else
    if [ -z "$fhskit" ]; then
        fhskit="${CARGO_TARGET_DIR:-$repo/target}/release/fhskit"
        [ -x "$fhskit" ] || (cd "$repo" && cargo build --release -j2 --bin fhskit >/dev/null 2>&1) ||
            { echo "error: building fhskit failed" >&2; exit 2; }
    fi
    fhskit="$(realpath "$fhskit")"
    export FHSKIT_STORE="local?root=$work/store"
    printf '#!/bin/sh\nexec %q instantiate "$@"\n' "$fhskit" >"$work/bin/nix-instantiate"
    chmod +x "$work/bin/nix-instantiate"
    run=("$fhskit" instantiate)
    echo "tool: fhskit $fhskit"
fi
echo "tree: $tree ($(git -C "$tree" rev-parse HEAD 2>/dev/null || echo 'not a git checkout'))"

bad=0
misc="$(cd "$tree" && "${run[@]}" --eval --strict lib/tests/misc.nix 2>"$work/misc.err")"
if [ "$misc" = "[ ]" ]; then
    echo "lib/tests/misc.nix: [ ]"
else
    echo "lib/tests/misc.nix: FAILED: ${misc:0:400}$(grep -m1 '^error' "$work/misc.err")"
    bad=1
fi

# modules.sh stops at nothing (each check counts); its tally is the last lines it prints.
PATH="$work/bin:$PATH" bash "$tree/lib/tests/modules.sh" >"$work/modules.out" 2>&1
pass="$(sed -n 's/^\([0-9]*\) Pass$/\1/p' "$work/modules.out")"
fail="$(sed -n 's/^\([0-9]*\) Fail$/\1/p' "$work/modules.out")"
if [ -z "$pass" ] || [ -z "$fail" ]; then
    echo "lib/tests/modules.sh: stopped before its tally:"
    tail -20 "$work/modules.out"
    bad=1
else
    echo "lib/tests/modules.sh: $pass Pass, $fail Fail"
    grep -A3 'TEST FAILED' "$work/modules.out" | grep -v '^--$' | head -60
    [ "$fail" = 0 ] || bad=1
fi
exit $bad
