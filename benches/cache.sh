#!/bin/sh
# Benchmarks of the binary caches (issue 20) against Nix 2.8 (nix-bin) in the same run, interleaved, medians and
# ratios printed:
#
#  1. copy --to file:// (zstd): `fhskit store copy --to 'file://C?compression=zstd' PATHS` vs `nix copy --to …` of
#     the same ~100 paths from the same chroot store (both read its database). Target: <= 1x.
#  2. the same with xz, Nix's default (one run each; Nix 2.8 compresses one path at a time). Target: <= 1x.
#  3. substitution over HTTP from `fhskit serve`: `fhskit store copy --from http://…` vs
#     `nix copy --from http://… --to local?root=FRESH`, signatures checked. Target: <= 1x.
#  4. `fhskit serve` with 50 concurrent clients fetching narinfos and NARs: peak RSS (VmHWM). Target: <= 64 MB.
#
# The paths: directories of /usr/share and /usr/lib, largest first, until ~500 MB of NAR, added with
# `nix-store --add` into a chroot store (content-addressed, as `fhskit store add` makes them too).
#
# usage: sh benches/cache.sh [RUNS] [MB]   (default 3 runs, 500 MB; needs nix-bin, python3; XZ=0 skips step 2)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-3}
mb=${2:-500}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-cache.XXXXXX)
trap 'kill $(cat "$work/serve.pid" 2>/dev/null) 2>/dev/null || true; chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
export NIX_CONFIG="build-users-group =
substituters =
experimental-features = nix-command"
export FHSKIT_CONFIG="$work/config.toml"
export XDG_CACHE_HOME="$work/xdg"
: > "$FHSKIT_CONFIG"

python3 - "$runs" "$fhskit" "$work" "$mb" "${XZ:-1}" <<'PY'
import os, shutil, statistics, subprocess, sys, time, threading, urllib.request
runs, fhskit, work, mb, xz = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
DEVNULL = subprocess.DEVNULL
src = f"{work}/src"

def run(argv, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {p.stderr.decode(errors='replace').strip()}")
    return p.stdout.decode()

def timed(argv, env=None):
    with open(f"{work}/stderr", "w+b") as errfile:
        start = time.perf_counter()
        p = subprocess.Popen(argv, stdout=DEVNULL, stderr=errfile, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")
    if status != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {err.strip()}")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime

def du(path):
    return int(run(["du", "-sk", path]).split()[0]) * 1024

# The paths: the largest directories of /usr/share and /usr/lib up to ~mb MB.
cands = []
for base in ["/usr/share", "/usr/lib", "/usr/lib/x86_64-linux-gnu"]:
    for name in sorted(os.listdir(base)):
        p = os.path.join(base, name)
        if os.path.isdir(p) and not os.path.islink(p) and p != "/usr/lib/x86_64-linux-gnu":
            cands.append((du(p), p))
# A NAR is larger than `du` says (hard-linked files are stored once per link): aim at half the target in `du`.
# The 100 largest directories under a size cap, the cap lowered until `du` sums to the target.
cands.sort()
for cap in sorted({s for s, _ in cands}, reverse=True):
    chosen = [(s, p) for s, p in cands if s <= cap][-100:]
    if sum(s for s, _ in chosen) <= mb * 1024 * 1024:
        break
chosen = [p for _, p in chosen]
root = f"local?root={src}"
paths = []
for p in chosen:
    try:
        paths.append(run(["nix-store", "--store", root, "--add", p]).strip())
    except SystemExit:
        pass  # unreadable files: leave that directory out
nar = sum(int(l.split()[1]) for l in run(["nix", "path-info", "--store", root, "-s"] + paths).splitlines())
print(f"{len(paths)} paths, {nar / 1e6:.1f} MB of NAR")
fenv = dict(os.environ, FHSKIT_STORE=root)

def median(xs):
    return statistics.median(xs)

def row(name, ours, theirs, target):
    o, t = median([w for w, _, _ in ours]), median([w for w, _, _ in theirs])
    oc, tc = median([c for _, _, c in ours]), median([c for _, _, c in theirs])
    orss, trss = max(r for _, r, _ in ours), max(r for _, r, _ in theirs)
    print(f"{name:38} fhskit {o:7.2f} s {orss/1024:5.0f} MB | nix {t:7.2f} s {trss/1024:5.0f} MB | ratio {o/t:5.2f}x (target {target})")
    print(f"{'':38} CPU time: fhskit {oc:.2f} s, nix {tc:.2f} s (load average {os.getloadavg()[0]:.1f})")

def fresh(d):
    shutil.rmtree(d, ignore_errors=True)
    return d

# 1 and 2: copy --to file://
for comp, n in [("zstd", runs)] + ([("xz", 1)] if xz else []):
    ours, theirs = [], []
    for i in range(n):
        c = fresh(f"{work}/c-nix")
        theirs.append(timed(["nix", "copy", "--store", root, "--to", f"file://{c}?compression={comp}"] + paths))
        c = fresh(f"{work}/c-fhs")
        ours.append(timed([fhskit, "store", "copy", "--to", f"file://{c}?compression={comp}"] + paths, env=fenv))
    row(f"copy --to file:// ({comp})", ours, theirs, "<= 1x")
    sizes = du(f"{work}/c-fhs/nar"), du(f"{work}/c-nix/nar")
    print(f"{'':38} compressed: fhskit {sizes[0]/1e6:.1f} MB, nix {sizes[1]/1e6:.1f} MB")

# 3: substitution from fhskit serve over HTTP, signatures checked.
run([fhskit, "store", "generate-key", "bench-1", f"{work}/sk", f"{work}/pk"])
pk = open(f"{work}/pk").read()
serve = subprocess.Popen([fhskit, "serve", "--listen", "127.0.0.1:0", "--sign-key", f"{work}/sk"], env=fenv,
                         stdout=DEVNULL, stderr=subprocess.PIPE)
open(f"{work}/serve.pid", "w").write(str(serve.pid))
url = serve.stderr.readline().decode().split()[-1]
ours, theirs = [], []
for i in range(runs):
    d = fresh(f"{work}/sub-nix")
    theirs.append(timed(["nix", "copy", "--from", url, "--to", f"local?root={d}",
                         "--option", "trusted-public-keys", pk] + paths))
    d = fresh(f"{work}/sub-fhs")
    shutil.rmtree(f"{work}/xdg", ignore_errors=True)
    ours.append(timed([fhskit, "--option", "trusted-public-keys", pk, "store", "copy", "--from", url] + paths,
                      env=dict(os.environ, FHSKIT_STORE=f"local?root={d}")))
row("substitute over HTTP from fhskit serve", ours, theirs, "<= 1x")

# 4: 50 concurrent clients.
hashes = [p.split("/")[-1][:32] for p in paths]
def hwm():
    for line in open(f"/proc/{serve.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
errors = []
def client(k):
    try:
        for j in range(8):
            h = hashes[(k * 7 + j) % len(hashes)]
            ni = urllib.request.urlopen(f"{url}/{h}.narinfo").read().decode()
            nar_url = next(l[5:] for l in ni.splitlines() if l.startswith("URL: "))
            with urllib.request.urlopen(f"{url}/{nar_url}") as r:
                while r.read(1 << 16):
                    pass
    except Exception as e:
        errors.append(str(e))
start = time.perf_counter()
threads = [threading.Thread(target=client, args=(k,)) for k in range(50)]
for t in threads: t.start()
for t in threads: t.join()
wall = time.perf_counter() - start
print(f"{'serve, 50 concurrent clients':38} peak RSS {hwm()/1024:.1f} MB (target <= 64 MB), {50*8} narinfo+NAR fetches in {wall:.1f} s, {len(errors)} errors")
serve.kill()
PY
