#!/bin/sh
# Benchmarks of `fhskit shell` (issue 17) against nix-shell 2.8 (nix-bin) in the same run, runs interleaved,
# medians and ratios printed:
#
#  1. fixed cost: `shell -E '<a derivation without inputs>' --run true`, fhskit vs nix-shell, each into its own
#     store (nothing to build; evaluation, instantiation, the rc file and bash).   Target: <= 1x nix-shell's.
#  2. cached `fhskit shell -p gcc pkg-config zlib --run true` over fhskit's package set, from a signed repository
#     of this host's packages (tests/fixtures/run-repo.sh) served on 127.0.0.1; everything built by a first
#     (untimed) run.   Target: <= 200 ms.  (nix-shell has no package set here: Nix's own figure for this command
#     is seconds, from nixpkgs' evaluation.)
#
# usage: sh benches/shell.sh [RUNS]   (default 10; root, nix-bin, busybox-static, python3, dpkg-dev, gpg, and the
#                                      host packages gcc-12, pkgconf, zlib1g-dev for part 2)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-10}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-shell.XXXXXX)
trap 'kill "$server" 2>/dev/null || true; chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
server=

# Part 2's repository: the host's gcc, pkg-config and zlib headers with their dependency closure, signed.
have_repo=no
if dpkg-query -W gcc-12 pkgconf zlib1g-dev >/dev/null 2>&1; then
    sh tests/fixtures/run-repo.sh "$work/repo-build" bash dash coreutils findutils diffutils sed grep mawk tar \
        gzip bzip2 xz-utils make patch patchelf unzip gcc g++ binutils libc6-dev zlib1g-dev pkgconf \
        >/dev/null 2>&1 && have_repo=yes
fi
if [ "$have_repo" = yes ]; then
    . benches/serve.sh
    serve_dir "$work/repo-build/repo"
    mkdir -p "$work/config/fhskit"
    cat > "$work/config/fhskit/config.toml" <<EOF
[pkgs]
host-sources = false
host-packages = false

[[pkgs.repository]]
url = "http://127.0.0.1:$port"
suite = "testing"
components = ["main"]
keyring = "$work/repo-build/repo/key.gpg"
EOF
fi

python3 - "$runs" "$fhskit" "$work" "$have_repo" <<'EOF'
import os, statistics, subprocess, sys, time
runs, fhskit, work, have_repo = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "yes"
env = dict(os.environ, NIX_CONFIG="build-users-group =", XDG_CONFIG_HOME=f"{work}/config",
           XDG_CACHE_HOME=f"{work}/cache", XDG_STATE_HOME=f"{work}/state", HOME=work)
for k in ["FHSKIT_STORE", "NIX_PATH", "FHSKIT_LOCK"]:
    env.pop(k, None)

def run(argv, extra=None, cwd=work):
    p = subprocess.run(argv, env=dict(env, **(extra or {})), capture_output=True, text=True, cwd=cwd)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {p.stderr.strip()[-3000:]}")
    return p.stdout

def timed(argv, extra=None):
    start = time.perf_counter()
    run(argv, extra)
    return time.perf_counter() - start

expr = 'derivation { name = "bench-shell"; system = builtins.currentSystem; builder = "/bin/sh"; greeting = "hi"; }'
fstore = {"FHSKIT_STORE": f"{work}/fstore"}
nixopts = ["--store", f"local?root={work}/nroot", "--option", "substituters", ""]
ours = lambda: timed([fhskit, "shell", "-E", expr, "--run", "true"], fstore)
theirs = lambda: timed(["nix-shell", "-E", expr, "--run", "true", *nixopts])
ours(); theirs()
a, b = [], []
for i in range(runs):
    pair = [(a, ours), (b, theirs)]
    if i % 2:
        pair.reverse()
    for acc, f in pair:
        acc.append(f())
load = os.getloadavg()[0]
print(f"shell benchmark, {runs} runs each (medians), load average {load:.2f}")
ma, mb = statistics.median(a), statistics.median(b)
print(f"{'shell -E <derivation> --run true':<46} fhskit {ma * 1000:7.1f} ms  nix-shell {mb * 1000:7.1f} ms  "
      f"ratio {ma / mb:.2f}x")

if have_repo:
    pstore = {"FHSKIT_STORE": f"{work}/pstore"}
    run([fhskit, "pkgs", "update"], pstore)
    argv = [fhskit, "shell", "-p", "gcc", "pkg-config", "zlib", "--run", "true"]
    start = time.perf_counter()
    run(argv, pstore)
    first = time.perf_counter() - start
    c = [timed(argv, pstore) for _ in range(runs)]
    mc = statistics.median(c)
    print(f"{'shell -p gcc pkg-config zlib --run true':<46} fhskit {mc * 1000:7.1f} ms  (target <= 200 ms; "
          f"first run, building everything: {first:.1f} s)")
else:
    print("part 2 not run: the host lacks gcc-12, pkgconf or zlib1g-dev (or run-repo.sh failed)")
EOF
