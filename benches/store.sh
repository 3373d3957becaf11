#!/bin/sh
# Benchmarks of the store (issue 3) against Nix's own tools (nix-bin) in the same run, each pair interleaved,
# medians and ratios printed:
#
#  1. hash: `fhskit store hash --type sha256 TREE` vs `nix-hash --type sha256 TREE` (warm page cache).
#     Target: >= 1.5x nix-hash's throughput, peak RSS <= 64 MB.
#  2. dump: `fhskit store dump TREE >/dev/null` vs `nix-store --dump TREE >/dev/null`. Target: >= 1x.
#  3. add: `fhskit store add /usr/include` vs `nix-store --add /usr/include`, each into a fresh store with the
#     same logical /nix/store (`local?root=DIR`), so both compute the same path. Target: <= 1/2 of the time.
#  4. gc: a collection deleting 5,000 small dead paths (added in one call before each run, not timed).
#     Target: <= 1/2 of nix-store --gc's time.
#
# usage: sh benches/store.sh [RUNS] [TREE]   (default 5 runs, TREE=/usr/lib/x86_64-linux-gnu; needs nix-bin, python3)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-5}
tree=${2:-/usr/lib/x86_64-linux-gnu}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-store.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# Nix warns about its build users group on a machine without one; the store commands used here need none.
export NIX_CONFIG="build-users-group ="

python3 - "$runs" "$fhskit" "$tree" "$work" <<'EOF'
import os, shutil, statistics, subprocess, sys, time
runs, fhskit, tree, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
DEVNULL = subprocess.DEVNULL

def timed(argv, stdout=DEVNULL):
    """Wall seconds and peak RSS (KiB) of one run; a failure stops the benchmark."""
    with open(f"{work}/stderr", "w+b") as errfile:
        start = time.perf_counter()
        p = subprocess.Popen(argv, stdout=stdout, stderr=errfile)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")
    if status != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {err.strip()}")
    return wall, usage.ru_maxrss

def rmtree(path):
    if os.path.exists(path):
        subprocess.run(["chmod", "-R", "u+w", path], check=True)
        shutil.rmtree(path)

def size_of(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total

rows = []
def report(name, ours, theirs, target, better_when_higher=False):
    a, b = statistics.median(t for t, _ in ours), statistics.median(t for t, _ in theirs)
    rss = max(r for _, r in ours) / 1024
    ratio = b / a if better_when_higher else a / b
    rows.append((name, a, b, ratio, rss, target))

# Warm the page cache and check both tools agree before timing anything.
ours = subprocess.run([fhskit, "store", "hash", "--type", "sha256", tree], capture_output=True, check=True).stdout
theirs = subprocess.run(["nix-hash", "--type", "sha256", tree], capture_output=True, check=True).stdout
if ours != theirs:
    sys.exit(f"error: hashes differ: {ours!r} vs {theirs!r}")
mib = size_of(tree) / (1 << 20)

# 1 and 2: hash and dump.
h_ours, h_nix, d_ours, d_nix = [], [], [], []
for _ in range(runs):
    h_ours.append(timed([fhskit, "store", "hash", "--type", "sha256", tree]))
    h_nix.append(timed(["nix-hash", "--type", "sha256", tree]))
    d_ours.append(timed([fhskit, "store", "dump", tree]))
    d_nix.append(timed(["nix-store", "--dump", tree]))
report(f"hash {tree} ({mib:.0f} MiB), throughput x", h_ours, h_nix, ">= 1.5x, RSS <= 64 MB", True)
report("dump to /dev/null, throughput x", d_ours, d_nix, ">= 1x", True)

# 3: add /usr/include into fresh stores.
a_ours, a_nix = [], []
for i in range(runs):
    ours_root, nix_root = f"{work}/add-ours-{i}", f"{work}/add-nix-{i}"
    a_ours.append(timed([fhskit, "store", "--store", f"local?root={ours_root}", "add", "/usr/include"]))
    a_nix.append(timed(["nix-store", "--store", f"local?root={nix_root}", "--add", "/usr/include"]))
    rmtree(ours_root)
    rmtree(nix_root)
report("add /usr/include, time x", a_ours, a_nix, "<= 0.5x")

# 4: gc of 5,000 small dead paths.
small = f"{work}/small"
os.makedirs(small)
names = []
for i in range(5000):
    name = f"{small}/f{i}"
    with open(name, "w") as f:
        f.write(f"small dead path {i}\n")
    names.append(name)
g_ours, g_nix = [], []
for i in range(runs):
    ours_root, nix_root = f"{work}/gc-ours-{i}", f"{work}/gc-nix-{i}"
    subprocess.run([fhskit, "store", "--store", f"local?root={ours_root}", "add", *names], stdout=DEVNULL, check=True)
    subprocess.run(["nix-store", "--store", f"local?root={nix_root}", "--add", *names], stdout=DEVNULL,
                   stderr=DEVNULL, check=True)
    g_ours.append(timed([fhskit, "store", "--store", f"local?root={ours_root}", "gc"]))
    g_nix.append(timed(["nix-store", "--store", f"local?root={nix_root}", "--gc"]))
    left = len(os.listdir(f"{ours_root}/nix/store")) - (1 if os.path.exists(f"{ours_root}/nix/store/.links") else 0)
    if left:
        sys.exit(f"error: fhskit store gc left {left} paths")
    rmtree(ours_root)
    rmtree(nix_root)
report("gc of 5,000 dead paths, time x", g_ours, g_nix, "<= 0.5x")

print(f"{'benchmark (medians of ' + str(runs) + ')':48} {'fhskit':>9} {'nix':>9} {'ratio':>7} {'RSS MiB':>8}  target")
for name, a, b, ratio, rss, target in rows:
    print(f"{name:48} {a*1000:7.0f}ms {b*1000:7.0f}ms {ratio:6.2f}x {rss:8.1f}  {target}")
EOF
