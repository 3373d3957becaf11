#!/usr/bin/env bash
# Compares `fhskit instantiate` with nix-instantiate (Nix 2.8 from nix-bin) on a nixpkgs tree: each tool
# instantiates the same attributes into its own chroot store (`local?root=DIR`, logical paths under /nix/store),
# and every `.drv` file Nix wrote must have been written by fhskit too, byte for byte, at the same path. With
# --all it also evaluates the `drvPath` of every top-level attribute of the tree that Nix 2.8 can evaluate with
# both tools (a `throw` counts as null, as `tryEval` gives; attributes failing with an error tryEval cannot
# catch are found by evaluable-attrs.py, cached in ~/.cache/fhskit-bench, and left out) and compares the results.
#
# usage: eval/tests/upstream/nixpkgs-compare.sh [--fhskit BIN] [--all] [--keep DIR] TREE [ATTR...]
#   TREE      a nixpkgs checkout (default.nix at its top; see docs/eval.md for the trees measured)
#   ATTR      attributes to instantiate (default: stdenv, python3 and a dozen large packages)
#   --all     also compare the drvPath of every top-level attribute
#   --keep    keep the two stores in DIR (default: a temporary directory, removed)
# Exit status: 0 when every .drv (and with --all every drvPath) agrees, 1 otherwise, 2 on bad usage.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
fhskit="" all=0 keep="" tree="" attrs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --fhskit) fhskit="$2"; shift ;;
        --all) all=1 ;;
        --keep) keep="$2"; shift ;;
        -*) echo "error: unknown option $1" >&2; exit 2 ;;
        *) if [ -z "$tree" ]; then tree="$1"; else attrs+=("$1"); fi ;;
    esac
    shift
done
if [ -z "$tree" ] || [ ! -f "$tree/default.nix" ]; then
    echo "error: give a nixpkgs tree (no default.nix in '${tree}')" >&2
    exit 2
fi
tree="$(cd "$tree" && pwd)"
command -v nix-instantiate >/dev/null || { echo "error: nix-instantiate not found (apt-get install nix-bin)" >&2; exit 2; }
if [ -z "$fhskit" ]; then
    fhskit="${CARGO_TARGET_DIR:-$repo/target}/release/fhskit"
    [ -x "$fhskit" ] || (cd "$repo" && cargo build --release -j2 --bin fhskit >/dev/null 2>&1) ||
        { echo "error: building fhskit failed" >&2; exit 2; }
fi
fhskit="$(realpath "$fhskit")"
if [ ${#attrs[@]} -eq 0 ]; then
    attrs=(stdenv python3 perl openssl curl git gcc llvm nix boost cmake glibc mercurial guile rustc cargo lix doxygen
        sphinx llvmPackages.clang)
fi

if [ -n "$keep" ]; then
    mkdir -p "$keep" && work="$(cd "$keep" && pwd)"
else
    work="$(mktemp -d "${TMPDIR:-/tmp}/fhskit-nixpkgs.XXXXXX")"
    trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fi
export NIX_CONFIG="build-users-group =
substituters ="
unset NIX_PATH
nixstore="local?root=$work/nix"
ourstore="local?root=$work/fhskit"

bad=0
echo "tree: $tree ($(git -C "$tree" rev-parse HEAD 2>/dev/null || echo 'not a git checkout'))"
for a in "${attrs[@]}"; do
    n="$(nix-instantiate --store "$nixstore" -A "$a" "$tree" 2>"$work/nix-$a.err")" || n="FAILED: $(tail -1 "$work/nix-$a.err")"
    f="$("$fhskit" instantiate --store "$ourstore" -A "$a" "$tree" 2>"$work/fhskit-$a.err")" ||
        f="FAILED: $(grep -m1 '^error' "$work/fhskit-$a.err")"
    if [ "$n" = "$f" ]; then
        echo "same  $a: $n"
    elif [[ "$n" == FAILED* ]]; then
        echo "skip  $a: Nix 2.8 cannot evaluate it ($n)"
    else
        echo "DIFF  $a: nix $n, fhskit $f"
        bad=1
    fi
done

# Every .drv Nix wrote, compared with fhskit's file at the same path.
same=0 differ=0 missing=0
for d in "$work"/nix/nix/store/*.drv; do
    [ -e "$d" ] || continue
    b="$(basename "$d")"
    if [ ! -e "$work/fhskit/nix/store/$b" ]; then
        missing=$((missing + 1)); echo "missing in fhskit's store: $b"; bad=1
    elif cmp -s "$d" "$work/fhskit/nix/store/$b"; then
        same=$((same + 1))
    else
        differ=$((differ + 1)); echo "differs: $b"; bad=1
    fi
done
extra=0
for d in "$work"/fhskit/nix/store/*.drv; do
    [ -e "$d" ] || continue
    [ -e "$work/nix/nix/store/$(basename "$d")" ] || extra=$((extra + 1))
done
echo ".drv files: $same identical, $differ differ, $missing missing in fhskit's store, $extra only in fhskit's"

if [ "$all" = 1 ]; then
    python3 "$here/evaluable-attrs.py" "$tree" "$nixstore" "${XDG_CACHE_HOME:-$HOME/.cache}/fhskit-bench" \
        >"$work/attrs.json" || exit 1
    expr="let
  pkgs = import $tree { };
  names = builtins.fromJSON (builtins.readFile $work/attrs.json);
  try = v: let r = builtins.tryEval v; in if r.success then r.value else null;
  drvOf = n: try (let v = pkgs.\${n}; in
    if builtins.isAttrs v && (v.type or null) == \"derivation\" then builtins.seq v.drvPath v.drvPath else null);
in builtins.listToAttrs (map (n: { name = n; value = drvOf n; }) names)"
    nix-instantiate --eval --read-write-mode --strict --json --store "$nixstore" -E "$expr" \
        >"$work/all-nix.json" 2>"$work/all-nix.err" ||
        { echo "Nix 2.8 could not evaluate every drvPath: $(tail -1 "$work/all-nix.err")"; bad=1; }
    "$fhskit" instantiate --eval --read-write-mode --strict --json --store "$ourstore" -E "$expr" \
        >"$work/all-fhskit.json" 2>"$work/all-fhskit.err" ||
        { echo "fhskit could not evaluate every drvPath: $(grep -m1 '^error' "$work/all-fhskit.err")"; bad=1; }
    python3 - "$work/all-nix.json" "$work/all-fhskit.json" <<'EOF' || bad=1
import json, sys
try:
    a, b = (json.load(open(p)) for p in sys.argv[1:3])
except Exception as e:
    sys.exit(f"cannot compare: {e}")
drvs = sum(1 for v in a.values() if v)
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
print(f"every attribute: {len(a)} attributes, {drvs} derivations; {len(a) - len(diff)} agree, {len(diff)} differ")
for k in diff[:20]:
    print(f"  {k}: nix {a.get(k)}, fhskit {b.get(k)}")
sys.exit(1 if diff else 0)
EOF
fi
exit $bad
