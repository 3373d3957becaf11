#!/bin/sh
# The acceptance rows of the Nix front end (tests/acceptance/README.md, issue 17) with fhskit against this host's
# real apt sources (amd64 and i386 indexes), in a fresh store, configuration and cache under a temporary
# directory; no Nix is used. Prints PASS or FAIL (with the reason) per row and exits 1 if any row failed. Not part
# of `cargo test`: it downloads the packages (a few hundred MB) and builds.
#
# The configuration lists the host's apt sources with the `non-free` component added where `main` is (the unfree
# row needs a package from it), for amd64 and i386.
#
# usage: sh tests/realworld/acceptance.sh [--keep]   (root or a user with user namespaces; python3 and a C compiler
#        for the mybinaryprogram row's program, which is linked against the libraries fhskit builds; readelf)
set -u
cd "$(dirname "$0")/../.."
repo=$(pwd)
keep=no
[ "${1:-}" = --keep ] && keep=yes
cargo build --release -j2 --bin fhskit >&2 || exit 1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-acceptance.XXXXXX)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    if [ "$keep" = yes ]; then echo "kept $work" >&2; else chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"; fi
}
trap cleanup EXIT
export XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache" XDG_STATE_HOME="$work/state"
export FHSKIT_STORE="$work/store" HOME="$work/home" FHSKIT="$fhskit"
unset NIX_PATH FHSKIT_LOCK NIXPKGS_ALLOW_UNFREE
mkdir -p "$XDG_CONFIG_HOME/fhskit" "$HOME"
python3 - > "$XDG_CONFIG_HOME/fhskit/config.toml" <<'EOF'
# The host's apt sources (one-line and deb822 files) as fhskit repositories, non-free added next to main.
import glob, re
entries = []
def add(uris, suites, components, keyring):
    if "main" in components and "non-free" not in components:
        components = components + ["non-free"]
    for uri in uris:
        for suite in suites:
            entries.append((uri, suite, components, keyring))
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.match(r"deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)", line)
        if m:
            opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
            add([m.group(2)], [m.group(3)], m.group(4).split(), opts.get("signed-by", ""))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(path).read().split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith((" ", "#")):
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            add(fields.get("uris", "").split(), fields.get("suites", "").split(), fields.get("components", "").split(),
                fields.get("signed-by", ""))
print('[pkgs]\narchitectures = ["amd64", "i386"]')
for uri, suite, components, keyring in entries:
    print(f'\n[[pkgs.repository]]\nurl = "{uri}"\nsuite = "{suite}"\ncomponents = {components!r}'.replace("'", '"'))
    if keyring.startswith("/"):
        print(f'keyring = "{keyring}"')
EOF
cp -r tests/acceptance "$work/acc"
cd "$work/acc"
failed=0
pass() { echo "PASS  $1"; }
fail() { echo "FAIL  $1: $2"; failed=1; }
log() { echo "$work/$1.log"; }

"$fhskit" pkgs update > "$(log update)" 2>&1 || { fail "pkgs update" "see $(log update)"; exit 1; }

# 1. fhskit shell fhsUser.nix: bash in an FHS tree with zlib, 32-bit libasound and coreutils' ls.
row="fhskit shell fhsUser.nix"
out=$("$fhskit" shell fhsUser.nix --run 'ls /usr/lib/libz.so.1 && od -An -t x1 -j 4 -N 1 /usr/lib32/libasound.so.2 && readlink -f "$(command -v ls)" && echo "$0"' 2> "$(log fhsuser)")
if [ $? -ne 0 ]; then fail "$row" "exit status, see $(log fhsuser)"
elif ! printf '%s\n' "$out" | grep -q '^ *01$'; then fail "$row" "no 32-bit libasound.so.2 in /usr/lib32: $out"
elif ! printf '%s\n' "$out" | grep -q -- '-coreutils-.*/bin/ls$'; then fail "$row" "ls is not coreutils': $out"
elif ! printf '%s\n' "$out" | grep -q 'bash$'; then fail "$row" "not bash: $out"
else pass "$row"; fi
# Without .env the file's value is the launcher: ./result/bin/example-env enters the same env.
row="fhskit build (buildFHSUserEnv without .env) -> result/bin/example-env"
sed 's/}).env$/})/' fhsUser.nix > fhsUserLauncher.nix
if "$fhskit" build fhsUserLauncher.nix -o fhs-result > "$(log fhslauncher)" 2>&1 \
    && out=$(./fhs-result/bin/example-env -c 'ls /usr/lib/libz.so.1' 2>&1) && [ "$out" = /usr/lib/libz.so.1 ]; then
    pass "$row"
else
    fail "$row" "see $(log fhslauncher): $out"
fi

# 2. fhskit build mybinaryprogram.nix: the patched program runs on a host without FHS libraries.
row="fhskit build mybinaryprogram.nix"
# The "downloaded" program: the fixture's, linked against the three libraries fhskit builds from the repository.
libs=$("$fhskit" build --no-out-link -E 'with import <nixpkgs> { }; with xlibs; [ libXrandr libXinerama libXcursor ]' 2> "$(log xlibs)")
set -- $libs
if [ $# -ne 3 ] || ! cc -o mybinaryprogram "$repo/tests/fixtures/stdenv-xlibs.c" "$1/lib/libXrandr.so.2" \
        "$2/lib/libXinerama.so.1" "$3/lib/libXcursor.so.1" -Wl,--allow-shlib-undefined 2> "$(log prog)"; then
    fail "$row" "cannot make the test program, see $(log xlibs) and $(log prog)"
elif ! "$fhskit" build mybinaryprogram.nix > "$(log mybinary)" 2>&1; then
    fail "$row" "build failed, see $(log mybinary)"
elif ! "$fhskit" patch --offline --out "$work/tools" "$(command -v mount)" "$(command -v env)" > "$(log tools)" 2>&1; then
    fail "$row" "cannot patch mount and env for the NixOS-like view, see $(log tools)"
else
    prefix="unshare --mount"
    [ "$(id -u)" -eq 0 ] || prefix="unshare --map-root-user --mount"
    out=$($prefix sh "$repo/tests/realworld/nixos-like.sh" "$work/tools/mount" "$work/tools/env" ./result/bin/mybinaryprogram 2>&1)
    case "$out" in "mybinaryprogram runs"*) pass "$row" ;; *) fail "$row" "the program does not run without FHS libraries: $out" ;; esac
fi
rm -f result

# 3. callPackage ./mypackage.nix (and callPackage_i686 for a 32-bit build).
for variant in callPackage callPackage_i686; do
    row="fhskit build -E 'with import <nixpkgs> { }; $variant ./mypackage.nix { }'"
    if ! "$fhskit" build -E "with import <nixpkgs> { }; $variant ./mypackage.nix { }" -o "res-$variant" > "$(log "$variant")" 2>&1; then
        fail "$row" "build failed, see $(log "$variant")"
        continue
    fi
    out=$("./res-$variant/bin/mypackage" 2>&1)
    case "$out" in "mypackage built against zlib"*) ;; *) fail "$row" "does not print the zlib versions: $out"; continue ;; esac
    # ELF class (byte 4) and machine (bytes 18-19, little-endian): 01 and 03 00 (EM_386) for i386, 02 and 3e 00
    # (EM_X86_64) for amd64; the interpreter (PT_INTERP) is the loader in the store.
    class=$(od -An -t x1 -j 4 -N 1 "./res-$variant/bin/mypackage" | tr -d ' ')
    machine=$(od -An -t x1 -j 18 -N 2 "./res-$variant/bin/mypackage" | tr -d ' ')
    interp=$(readelf -lW "./res-$variant/bin/mypackage" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p')
    if [ "$variant" = callPackage_i686 ] && [ "$class$machine" != 010300 ]; then fail "$row" "not a 32-bit x86 program"
    elif [ "$variant" = callPackage ] && [ "$class$machine" != 023e00 ]; then fail "$row" "not a 64-bit x86 program"
    else
        case "$variant:$interp" in
            callPackage_i686:"$FHSKIT_STORE"/*/lib/i386-linux-gnu/ld-linux.so.2) pass "$row" ;;
            callPackage:"$FHSKIT_STORE"/*/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2) pass "$row" ;;
            *) fail "$row" "the interpreter is not the store's loader: $interp" ;;
        esac
    fi
done

# 4. fhskit shell -p gcc pkg-config zlib --run 'make -C mypackage-src': builds and runs.
row="fhskit shell -p gcc pkg-config zlib --run 'make -C mypackage-src'"
rm -f mypackage-src/mypackage
if "$fhskit" shell -p gcc pkg-config zlib --run 'make -C mypackage-src' > "$(log shell-p)" 2>&1 && [ -x mypackage-src/mypackage ]; then
    out=$("$fhskit" shell -p gcc pkg-config zlib --run './mypackage-src/mypackage' 2>&1)
    case "$out" in *"mypackage built against zlib"*) pass "$row" ;; *) fail "$row" "the result does not run: $out" ;; esac
else
    fail "$row" "see $(log shell-p)"
fi

# 5. fhskit shell (default.nix) --run 'pkg-config --libs zlib' -> -lz
row="fhskit shell --run 'pkg-config --libs zlib'"
out=$("$fhskit" shell --run 'pkg-config --libs zlib' 2> "$(log shell-default)")
case "$out" in *-lz*) pass "$row" ;; *) fail "$row" "printed '$out', see $(log shell-default)" ;; esac

# 6. NIXPKGS_ALLOW_UNFREE: an unfree package is refused without the variable, naming it, and works with it. The
#    host's sources name the components; a non-free one must be among them for this row.
row="NIXPKGS_ALLOW_UNFREE=1 fhskit shell -p <unfree>"
# The smallest amd64 package of non-free whose dependencies are at most libc6 (quick to fetch and build).
unfree=$("$fhskit" pkgs search --json . 2>/dev/null | python3 -c '
import json, re, sys
try:
    rows = json.load(sys.stdin)
except Exception:
    sys.exit(0)
def deps(r):
    return {re.sub(r"[ (:].*", "", d.strip()) for d in re.split(r"[,|]", r.get("depends_text", "") + "," + r.get("pre_depends_text", "")) if d.strip()}
rows = [r for r in rows if r.get("component") == "non-free" and r.get("architecture") == "amd64" and deps(r) <= {"libc6"}]
if rows:
    print(min(rows, key=lambda r: r.get("size", 0))["name"])' 2>/dev/null)
if [ -z "$unfree" ]; then
    fail "$row" "no non-free package in the configured repositories (add the non-free component to test this row)"
else
    # A Debian name with a dot is quoted in the attribute path (nix-shell -p puts the text in its expression as is).
    err=$("$fhskit" shell -p "debian.\"$unfree\"" --run true 2>&1)
    if [ $? -eq 0 ]; then fail "$row" "debian.$unfree was not refused"
    elif ! printf '%s' "$err" | grep -q NIXPKGS_ALLOW_UNFREE; then fail "$row" "the refusal does not name NIXPKGS_ALLOW_UNFREE: $err"
    elif ! NIXPKGS_ALLOW_UNFREE=1 "$fhskit" shell -p "debian.\"$unfree\"" --run true > "$(log unfree)" 2>&1; then
        fail "$row" "refused or failed with the variable, see $(log unfree)"
    else pass "$row"; fi
fi

# 7. hash = lib.fakeHash: Nix's mismatch message, and the printed hash then works.
row="lib.fakeHash then build"
mkdir -p served
echo "fetched file" > served/file.txt
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd served && exec python3 -m http.server --bind 127.0.0.1 "$port" > /dev/null 2>&1) &
server=$!
sleep 1
cat > fake.nix <<EOF
with import <nixpkgs> { };
fetchurl { url = "http://127.0.0.1:$port/file.txt"; hash = HASH; }
EOF
sed 's/HASH/lib.fakeHash/' fake.nix > fake1.nix
err=$("$fhskit" build fake1.nix --no-out-link 2>&1)
got=$(printf '%s\n' "$err" | sed -n 's/^ *got: *//p' | head -1)
if ! printf '%s' "$err" | grep -q "hash mismatch in fixed-output derivation"; then fail "$row" "no hash mismatch message: $err"
elif ! printf '%s' "$err" | grep -q "specified: sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; then fail "$row" "no specified: line: $err"
elif [ -z "$got" ]; then fail "$row" "no got: line: $err"
else
    sed "s|HASH|\"$got\"|" fake.nix > fake2.nix
    if "$fhskit" build fake2.nix --no-out-link > "$(log fakehash)" 2>&1; then pass "$row"; else fail "$row" "the printed hash does not work, see $(log fakehash)"; fi
fi

exit $failed
