#!/bin/sh
# Benchmarks of `fhskit run` (issue 7), each side interleaved in one run, medians and ratios printed:
#
#  1. cached start: the second and later `fhskit run` of the same program (zstd --version) per strategy, against
#     the program started directly plus the strategy's own floor: for patch the patched copy run directly, for shim
#     the ld-shim started by hand with the same loader and library path, for fhs `fhskit env run` of the same env.
#     Target: fhskit run <= 1.2x floor.
#  2. first start of a program with a ~150-package closure: gtk-launch (GTK 3: libgtk-3-0 and its closure, the
#     Depends of cairo, pango, gdk-pixbuf, cups, colord, dconf, X11, Wayland, ...) run with `--version` by
#     `fhskit run --no-host` from an empty store and an empty package cache (indexes from an untimed
#     `fhskit pkgs update`), against the same packages fetched and unpacked by apt's tools with the same
#     parallelism: `apt-get download` of exactly the packages fhskit fetched (same names and versions, split into
#     N batches run at once, largest first round-robin) from a fresh private apt state (untimed `apt-get update`;
#     sources.list pointing at the same repository, signed-by its key), then `dpkg-deb -x` of every .deb into its
#     own directory, N at a time, largest first. N = 4, the jobs `fhskit run` uses. The repository is served on
#     127.0.0.1, re-packed from this host's installed packages by tests/fixtures/run-repo.sh with data.tar.xz as
#     in the archive; if libgtk-3-bin is not installed the script installs it first (network, once: the
#     repository can only hold installed packages). Interleaved, the order alternating, nothing deleted until the
#     end (see benches/pkgs.sh). Target: <= 1x. `sh benches/run.sh 42 first` at 45441dc on the shared 2-core VM
#     (load 8-10): 0.89x and 1.00x elapsed, 0.77x and 0.90x CPU (docs/run.md).
#
# usage: sh benches/run.sh [RUNS] [cached|first]   (root; needs python3, apt-get, dpkg-dev, gpg, xz and zstd
#        installed; about 15 minutes, most of it re-packing the repository; one section when named)
# BENCH_RUN_REPO=DIR keeps the re-packed repository in DIR and reuses it when DIR/repo exists (for repeated runs).
set -eu
cd "$(dirname "$0")/.."
runs=${1:-30}
only=${2:-}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-run.XXXXXX)
server=
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
export FHSKIT_STORE="$work/store" XDG_CACHE_HOME="$work/cache" XDG_CONFIG_HOME="$work/config"
cp /usr/bin/zstd "$work/zstd"
prog="$work/zstd"

# 1. cached start
if [ "$only" != first ]; then
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
fi
[ "$only" != cached ] || exit 0

# 2. first start from a local repository vs parallel `apt-get download` + `dpkg-deb -x` of the same packages
if ! dpkg-query -W -f='${Status}' libgtk-3-bin 2>/dev/null | grep -q ' installed$'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libgtk-3-bin >/dev/null
fi
build=${BENCH_RUN_REPO:-$work/repo-build}
if [ ! -d "$build/repo" ]; then
    RUN_REPO_COMPRESSION=${RUN_REPO_COMPRESSION:-xz} sh tests/fixtures/run-repo.sh "$build" libgtk-3-bin >/dev/null
fi
repo=$(realpath "$build/repo")
. benches/serve.sh
serve_dir "$repo"
cp /usr/bin/gtk-launch "$work/gtk-launch"
python3 - "$runs" "$fhskit" "$work" "$repo" "$port" <<'EOF'
import concurrent.futures, os, resource, statistics, subprocess, sys, time
runs, fhskit, work, repo, port = sys.argv[1:]
runs = max(3, int(runs) // 6)
jobs = 4  # what `fhskit run` uses (SourceArgs::source_options in cli/src/commands/run.rs)
spec = f"[signed-by={repo}/key.gpg arch=amd64] http://127.0.0.1:{port}/ testing main"
quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
prog = [f"{work}/gtk-launch", "--version"]

def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

# The repository's packages by SHA-256, to name the .deb files fhskit's cache holds.
stanzas = {}
for st in open(f"{repo}/dists/testing/main/binary-amd64/Packages").read().split("\n\n"):
    f = dict(l.split(": ", 1) for l in st.splitlines() if ": " in l and not l.startswith(" "))
    if "SHA256" in f:
        stanzas[f["SHA256"]] = f

def ours(i):
    d = f"{work}/runs/{i}/fhskit"
    e = dict(os.environ, FHSKIT_STORE=f"{d}/store", XDG_CACHE_HOME=f"{d}/cache")
    subprocess.run([fhskit, "pkgs", "update", "--repo", spec], env=e, **quiet)
    c, t = cpu(), time.perf_counter()
    subprocess.run([fhskit, "run", "--no-host", "--repo", spec, *prog], env=e, **quiet)
    t, c = time.perf_counter() - t, cpu() - c
    fetched = [stanzas[n[:-4]] for n in os.listdir(f"{d}/cache/fhskit/debs") if n.endswith(".deb")]
    return t, c, fetched

def apt(i, fetched):
    d = f"{work}/runs/{i}/apt"
    for sub in ["lists/partial", "cache/archives/partial", "etc/parts", "etc/prefs", "debs", "root"]:
        os.makedirs(f"{d}/{sub}")
    open(f"{d}/status", "w").close()
    with open(f"{d}/etc/sources.list", "w") as f:
        f.write(f"deb [arch=amd64 signed-by={repo}/key.gpg] http://127.0.0.1:{port}/ testing main\n")
    o = ["-o", f"Dir::State::Lists={d}/lists", "-o", f"Dir::State::status={d}/status", "-o", f"Dir::Cache={d}/cache",
         "-o", f"Dir::Etc::SourceList={d}/etc/sources.list", "-o", f"Dir::Etc::SourceParts={d}/etc/parts",
         "-o", f"Dir::Etc::Preferences={d}/etc/prefs", "-o", "APT::Architecture=amd64", "-o", "Debug::NoLocking=1",
         "-o", "APT::Sandbox::User=root", "-qq"]
    subprocess.run(["apt-get", *o, "update"], **quiet)
    by_size = sorted(fetched, key=lambda f: -int(f["Size"]))
    batches = [[f"{f['Package']}={f['Version']}" for f in by_size[k::jobs]] for k in range(jobs)]
    def download(batch):
        subprocess.run(["apt-get", *o, "download", *batch], cwd=f"{d}/debs", **quiet)
    def unpack(deb):
        subprocess.run(["dpkg-deb", "-x", f"{d}/debs/{deb}", f"{d}/root/{deb[:-4]}"], **quiet)
    c, t = cpu(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        list(ex.map(download, batches))
    debs = sorted(os.listdir(f"{d}/debs"), key=lambda n: -os.path.getsize(f"{d}/debs/{n}"))
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        list(ex.map(unpack, debs))
    t, c = time.perf_counter() - t, cpu() - c
    if len(debs) != len(fetched):
        raise SystemExit(f"apt-get download fetched {len(debs)} packages, fhskit {len(fetched)}")
    return t, c

# A first fhskit run names the packages; every run of either side then fetches exactly those.
_, _, closure = ours("names")
ot, oc, at, ac = [], [], [], []
for i in range(runs):
    for side in (["ours", "apt"] if i % 2 == 0 else ["apt", "ours"]):
        if side == "ours":
            t, c, fetched = ours(i)
            if sorted(f["SHA256"] for f in fetched) != sorted(f["SHA256"] for f in closure):
                raise SystemExit("fhskit fetched another set of packages than in its first run")
            ot.append(t); oc.append(c)
        else:
            t, c = apt(i, closure)
            at.append(t); ac.append(c)
mo, ma = statistics.median(ot), statistics.median(at)
size = sum(int(f["Size"]) for f in closure) / 1e6
print(f"first start of gtk-launch --version: closure of {len(closure)} packages ({size:.0f} MB of .deb, data.tar.xz) "
      f"from a local repository; median of {runs} interleaved runs, load {os.getloadavg()[0]:.1f}:")
print(f"  fhskit run --no-host (resolve, fetch, verify, unpack, store, plan, run):  {mo:6.2f} s elapsed "
      f"{statistics.median(oc):6.2f} s cpu")
print(f"  apt-get download ({jobs} at once) + dpkg-deb -x ({jobs} at once):              {ma:6.2f} s elapsed "
      f"{statistics.median(ac):6.2f} s cpu")
print(f"  ratio: {mo / ma:.2f}x elapsed, {statistics.median(oc) / statistics.median(ac):.2f}x cpu   (target <= 1x)")
EOF
