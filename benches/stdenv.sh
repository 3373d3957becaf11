#!/bin/sh
# Benchmark of the package set's stdenv (issue 17): building the acceptance `mypackage` (a C program using zlib,
# `callPackage ./mypackage.nix {}`) into an empty store with the .deb files already in fhskit's package cache
# (fetched by `fhskit pkgs fetch --download-only` from a local signed repository of host packages re-packed by
# tests/fixtures/run-repo.sh, which is then stopped: builtin:fetchurl copies them from the cache; no network). Target: <= 10 s in all on a two-core machine. Printed: the median of RUNS fresh stores, in all and
# split into
#   unpack:  the Debian packages of the build (copied from the cache, checked, unpacked by builtin:fhskit-deb)
#   sandbox: the FHS trees (builtin:fhskit-root), the stdenv's setup and compiler wrapper (two bash builds)
#   compile: mypackage itself (one sandboxed build: setup, gcc, pkg-config, fixup)
# each measured as its own `fhskit build` in the same store, one after the other, plus one `fhskit build` of
# everything at once (the user's command) in another fresh store. The load average is printed with the figures.
#
# usage: sh benches/stdenv.sh [RUNS]   (default 3; dpkg-deb, dpkg-scanpackages, gpg, python3, gcc, zlib1g-dev)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-stdenv.XXXXXX)
trap 'kill "$server" 2>/dev/null || true; chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
server=
sh tests/fixtures/run-repo.sh "$work/fixture" bash dash coreutils findutils diffutils sed grep mawk tar gzip bzip2 \
    xz-utils make patch patchelf unzip gcc g++ binutils libc6-dev zlib1g-dev pkgconf >/dev/null
. benches/serve.sh
serve_dir "$work/fixture/repo"
mkdir -p "$work/config/fhskit" "$work/src"
cat > "$work/config/fhskit/config.toml" <<EOF
[pkgs]
host-sources = false
host-packages = false

[[pkgs.repository]]
url = "http://127.0.0.1:$port"
suite = "testing"
components = ["main"]
keyring = "$work/fixture/repo/key.gpg"
EOF
cp -r tests/acceptance/mypackage.nix tests/acceptance/mypackage-src "$work/src/"

python3 - "$runs" "$fhskit" "$work" "$server" <<'EOF'
import os, signal, statistics, subprocess, sys, time
runs, fhskit, work, server = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
base = dict(os.environ, XDG_CONFIG_HOME=f"{work}/config", XDG_CACHE_HOME=f"{work}/cache",
            XDG_STATE_HOME=f"{work}/state", HOME=f"{work}/home")
base.pop("NIX_PATH", None)
subprocess.run([fhskit, "pkgs", "update"], env=base, check=True, capture_output=True)
P = "(with import <nixpkgs> { }; callPackage ./mypackage.nix { })"
# The .deb files cached: evaluating the build pins its packages in the lock, `pkgs fetch --download-only` puts
# them into fhskit's cache, and the repository server is stopped, so every build copies them from the cache.
subprocess.run([fhskit, "eval", "-E", f"{P}.drvPath"], env=base, cwd=f"{work}/src", check=True, capture_output=True)
subprocess.run([fhskit, "pkgs", "fetch", "--download-only", "--lock", f"{work}/state/fhskit/fhskit.lock"], env=base,
               check=True, capture_output=True)
os.kill(server, signal.SIGTERM)
steps = [
    ("unpack", f"with import <nixpkgs> {{ }}; stdenv.fhskitBaseDebs ++ [ zlib zlib.dev pkg-config ]"),
    ("sandbox", f"with import <nixpkgs> {{ }}; [ {P}.fhskitRoot stdenv.setup stdenv.cc ]"),
    ("compile", P),
]

def build(store, expr):
    env = dict(base, FHSKIT_STORE=store)
    start = time.perf_counter()
    p = subprocess.run([fhskit, "build", "--no-out-link", "-E", expr], env=env, cwd=f"{work}/src",
                       capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"error: fhskit build -E '{expr}' failed: {p.stderr.strip()[-2000:]}")
    return wall

split = {name: [] for name, _ in steps}
total, whole = [], []
for i in range(runs):
    store = f"{work}/store-split-{i}"
    t = 0.0
    for name, expr in steps:
        w = build(store, expr)
        split[name].append(w)
        t += w
    total.append(t)
    whole.append(build(f"{work}/store-whole-{i}", P))
load = open("/proc/loadavg").read().split()[:3]
print(f"mypackage into an empty store, .debs cached ({runs} runs, median; load average {' '.join(load)}):")
for name, _ in steps:
    print(f"  {name:8} {statistics.median(split[name]):6.2f} s")
print(f"  {'sum':8} {statistics.median(total):6.2f} s")
m = statistics.median(whole)
print(f"  one `fhskit build` of it: {m:.2f} s  (target 10 s: {m / 10:.2f}x)")
EOF
