#!/bin/sh
# Benchmark of fhskit's package set (issue 17): `with import <nixpkgs> {}; zlib` evaluated (its derivation paths
# computed, nothing written), the package set's names pinned in the lock and the index cached beforehand.
# Target: <= 100 ms. Nix has no such package set here, so the anchor printed beside it is nix-instantiate 2.8
# evaluating a trivial expression (its fixed cost) in the same run.
#
# Part 2 measures the set of every Debian package name (`debian ? zlib1g`, which builds the whole name set) over
# a repository whose index holds N synthetic packages besides the real ones (default 60000, Debian's size).
#
# usage: sh benches/nixpkgs.sh [RUNS] [N]   (default 10 runs; needs dpkg-dev, gpg, python3, nix-bin, and the host
#                                            package zlib1g-dev)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-10}
synthetic=${2:-60000}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-nixpkgs.XXXXXX)
server=
trap 'kill "$server" 2>/dev/null || true; chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

sh tests/fixtures/run-repo.sh "$work/repo-build" zlib1g zlib1g-dev >/dev/null 2>&1
repo=$work/repo-build/repo
# N synthetic stanzas appended to the index, then the release file rewritten and signed again.
python3 - "$repo/dists/testing/main/binary-amd64/Packages" "$synthetic" <<'EOF'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "a") as f:
    for i in range(n):
        f.write(f"\nPackage: synthetic-package-{i}\nVersion: 1.0-{i}\nArchitecture: amd64\nMaintainer: none\n"
                f"Installed-Size: 1\nDepends: libc6\nFilename: pool/main/synthetic-{i}.deb\nSize: 1000\n"
                f"SHA256: {i:064x}\nSection: libs\nPriority: optional\nDescription: synthetic package {i}\n")
EOF
(
    cd "$repo/dists/testing"
    rm -f main/binary-amd64/Packages.gz && gzip -9nk main/binary-amd64/Packages
    {
        sed -n '1,/^SHA256:/p' Release
        for f in main/binary-amd64/Packages main/binary-amd64/Packages.gz main/Contents-amd64 main/Contents-amd64.gz; do
            printf ' %s %s %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"
        done
    } > Release.new && mv Release.new Release
    export GNUPGHOME="$work/gnupg"
    mkdir -p "$GNUPGHOME" && chmod 700 "$GNUPGHOME"
    gpg --batch --quiet --passphrase '' --quick-gen-key 'fhskit bench <bench@example.invalid>' ed25519 sign never 2>/dev/null
    gpg --batch --quiet --export > "$repo/key.gpg"
    rm -f InRelease Release.gpg
    gpg --batch --quiet --clearsign -o InRelease Release
)
. benches/serve.sh
serve_dir "$repo"
mkdir -p "$work/config/fhskit"
cat > "$work/config/fhskit/config.toml" <<EOF
[[pkgs.repository]]
url = "http://127.0.0.1:$port"
suite = "testing"
components = ["main"]
architectures = ["amd64"]
keyring = "$repo/key.gpg"
EOF

python3 - "$runs" "$fhskit" "$work" "$synthetic" <<'EOF'
import os, statistics, subprocess, sys, time
runs, fhskit, work, synthetic = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
env = dict(os.environ, XDG_CONFIG_HOME=f"{work}/config", XDG_CACHE_HOME=f"{work}/cache",
           XDG_STATE_HOME=f"{work}/state", HOME=work, FHSKIT_STORE=f"{work}/store", NIX_CONFIG="build-users-group =")
for k in ["NIX_PATH", "FHSKIT_LOCK", "NIXPKGS_ALLOW_UNFREE"]:
    env.pop(k, None)

def run(argv):
    p = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=work)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {p.stderr.strip()[-3000:]}")
    return p.stdout

def timed(argv):
    start = time.perf_counter()
    run(argv)
    return time.perf_counter() - start

zlib = [fhskit, "eval", "-E", "with import <nixpkgs> {}; zlib.drvPath"]
names = [fhskit, "eval", "-E", "with import <nixpkgs> {}; debian ? zlib1g"]
nix = ["nix-instantiate", "--store", f"{work}/nix", "--eval", "-E", "with { zlib = 1; }; zlib"]
run([fhskit, "pkgs", "update"])
run(zlib)   # pins zlib's closure and adds the set to the store
run(names)  # reads the index's names once into the cache
t = {"zlib": [], "names": [], "nix": []}
for _ in range(runs):
    t["zlib"].append(timed(zlib))
    t["names"].append(timed(names))
    t["nix"].append(timed(nix))
med = {k: statistics.median(v) * 1000 for k, v in t.items()}
load = open("/proc/loadavg").read().split()[0]
print(f"fhskit eval 'with import <nixpkgs> {{}}; zlib.drvPath'   median {med['zlib']:7.1f} ms  (target <= 100 ms)")
print(f"fhskit eval 'debian ? zlib1g' ({synthetic} + real names)  median {med['names']:7.1f} ms")
print(f"nix-instantiate --eval of a trivial expression     median {med['nix']:7.1f} ms  (Nix's fixed cost)")
print(f"ratio zlib / nix fixed cost: {med['zlib'] / med['nix']:.2f}x   runs {runs}, load average {load}")
EOF
