#!/bin/sh
# Benchmarks of `fhskit run` (issue 7), each side interleaved in one run, medians and ratios printed:
#
#  1. cached start: the second and later `fhskit run` of the same program (zstd --version) per strategy, against
#     the program started directly plus the strategy's own floor: for patch the patched copy run directly, for shim
#     the ld-shim started by hand with the same loader and library path, for fhs `fhskit env run` of the same env.
#     Target: fhskit run <= 1.2x floor.
#  2. first run of a program needing ~30 packages (curl: libcurl4 and its closure) from a local repository (served
#     on 127.0.0.1, built from this host's packages by tests/fixtures/run-repo.sh), fresh store and package cache
#     each time, against `apt-get install --download-only` of the same packages into a fresh apt state plus
#     `dpkg-deb -x` of every .deb. Target: <= 1x.
#
# usage: sh benches/run.sh [RUNS]   (root; needs python3, apt-get, dpkg-dev, gpg, zstd and curl installed)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-30}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-run.XXXXXX)
server=
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
export FHSKIT_STORE="$work/store" XDG_CACHE_HOME="$work/cache" XDG_CONFIG_HOME="$work/config"
cp /usr/bin/zstd "$work/zstd"
prog="$work/zstd"

# 1. cached start
for s in patch shim fhs; do "$fhskit" run --offline --strategy $s "$prog" --version >/dev/null; done
plan() { "$fhskit" -v run --offline --strategy "$1" "$prog" --version 2>&1 >/dev/null; }
patched=$(plan patch | sed -n 's/^  patched copy: //p')
shimline=$(plan shim | sed -n 's/^  shim \(.*\) at .* with loader \(.*\)$/\1 \2/p')
shim=${shimline% *}
loader=${shimline#* }
libpath=$(plan shim | sed -n 's/^  library path: //p')
env=$(plan fhs | sed -n 's/^  fhs env: //p')

python3 - "$runs" "$fhskit" "$prog" "$patched" "$shim" "$loader" "$libpath" "$env" <<'EOF'
import os, statistics, subprocess, sys, time
runs, fhskit, prog, patched, shim, loader, libpath, env = sys.argv[1:]
runs = int(runs)
shim_env = dict(os.environ, NIX_LD_x86_64_linux=loader, NIX_LD_LIBRARY_PATH_x86_64_linux=libpath)
cases = {
    "direct":      ([prog, "--version"], None),
    "patch floor": ([patched, "--version"], None),
    "patch run":   ([fhskit, "run", "--offline", "--strategy", "patch", prog, "--version"], None),
    "shim floor":  ([shim, prog, "--version"], shim_env),
    "shim run":    ([fhskit, "run", "--offline", "--strategy", "shim", prog, "--version"], None),
    "fhs floor":   ([fhskit, "env", "run", env, "--", prog, "--version"], None),
    "fhs run":     ([fhskit, "run", "--offline", "--strategy", "fhs", prog, "--version"], None),
}
import resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
times = {k: [] for k in cases}
cpus = {k: [] for k in cases}
for _ in range(runs):
    for name, (argv, e) in cases.items():
        c, t = cpu(), time.perf_counter()
        subprocess.run(argv, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - t)
        cpus[name].append(cpu() - c)
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
# CPU time (user + system of the started processes) does not count the time spent waiting for a core, so it stays
# meaningful on a loaded machine where elapsed time mostly measures the queue.
mcpu = {k: statistics.mean(v) * 1000 for k, v in cpus.items()}
print(f"cached start, median elapsed and mean CPU time of {runs} interleaved runs (ms), load {os.getloadavg()[0]:.1f}:")
for k, v in med.items():
    print(f"  {k:12s} {v:8.2f} elapsed {mcpu[k]:8.2f} cpu")
for s in ["patch", "shim", "fhs"]:
    print(f"  {s}: fhskit run / (direct + floor) = {med[s + ' run'] / med[s + ' floor']:.2f}x   "
          f"(cached start overhead: {med[s + ' run'] - med[s + ' floor']:.2f} ms elapsed, "
          f"{mcpu[s + ' run'] - mcpu[s + ' floor']:.2f} ms cpu)")
EOF

# 2. first run from a local repository vs apt-get --download-only + unpacking
sh tests/fixtures/run-repo.sh "$work/repo-build" libcurl4 >/dev/null
repo="$work/repo-build/repo"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$repo" && exec python3 -m http.server "$port" --bind 127.0.0.1) >/dev/null 2>&1 &
server=$!
sleep 1
spec="[signed-by=$repo/key.gpg arch=amd64] http://127.0.0.1:$port/ testing main"
cp /usr/bin/curl "$work/curl"
npkgs=$(ls "$repo/pool/main" | wc -l)
python3 - "$runs" "$fhskit" "$work" "$spec" "$repo" "$port" "$npkgs" <<'EOF'
import os, shutil, statistics, subprocess, sys, time, glob
runs, fhskit, work, spec, repo, port, npkgs = sys.argv[1:]
runs = max(3, int(runs) // 6)
def fresh(d):
    shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
def ours():
    base = f"{work}/first"
    fresh(base)
    e = dict(os.environ, FHSKIT_STORE=f"{base}/store", XDG_CACHE_HOME=f"{base}/cache")
    subprocess.run([fhskit, "pkgs", "update", "--repo", spec], env=e, check=True, stdout=subprocess.DEVNULL)
    t = time.perf_counter()
    subprocess.run([fhskit, "run", "--no-host", "--repo", spec, "--strategy", "shim", f"{work}/curl", "--version"],
                   env=e, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t
def apt():
    a = f"{work}/apt"
    fresh(a)
    for d in ["lists/partial", "cache/archives/partial", "etc/parts", "etc/prefs", "root"]:
        os.makedirs(f"{a}/{d}")
    open(f"{a}/status", "w").close()
    open(f"{a}/etc/sources.list", "w").write(f"deb [arch=amd64 signed-by={repo}/key.gpg] http://127.0.0.1:{port}/ testing main\n")
    o = ["-o", f"Dir::State::Lists={a}/lists", "-o", f"Dir::State::status={a}/status", "-o", f"Dir::Cache={a}/cache",
         "-o", f"Dir::Etc::SourceList={a}/etc/sources.list", "-o", f"Dir::Etc::SourceParts={a}/etc/parts",
         "-o", f"Dir::Etc::Preferences={a}/etc/prefs", "-o", "APT::Architecture=amd64", "-o", "Debug::NoLocking=1", "-qq"]
    subprocess.run(["apt-get", *o, "update"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.perf_counter()
    subprocess.run(["apt-get", *o, "install", "-y", "--download-only", "libcurl4"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for deb in glob.glob(f"{a}/cache/archives/*.deb"):
        subprocess.run(["dpkg-deb", "-x", deb, f"{a}/root"], check=True)
    return time.perf_counter() - t
o, p = [], []
for _ in range(runs):
    o.append(ours()); p.append(apt())
mo, mp = statistics.median(o) * 1000, statistics.median(p) * 1000
print(f"first run of curl ({npkgs} packages from a local repository), median of {runs} interleaved runs:")
print(f"  fhskit run (resolve, fetch, verify, unpack, store, run): {mo:8.1f} ms")
print(f"  apt-get install --download-only + dpkg-deb -x:          {mp:8.1f} ms")
print(f"  ratio: {mo / mp:.2f}x")
EOF
