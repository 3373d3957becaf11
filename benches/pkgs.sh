#!/bin/sh
# Benchmarks of pkgs (issue 6), against apt in the same run on the same local repository, medians and ratios printed:
#
#  1. fetch: resolve, download, verify and unpack the closure of ~100 packages (curl python3 git gnupg) into a fresh
#     store and a fresh .deb cache with `fhskit pkgs fetch --no-host` (indexes from one `fhskit pkgs update` before),
#     against `apt-get install --download-only --no-install-recommends` of the same packages into a fresh archive
#     directory (apt's lists and package cache from one `apt-get update` before) plus `dpkg-deb -x` of every
#     downloaded .deb into a fresh directory. The repository is served on 127.0.0.1 and built from this host's
#     installed packages by tests/fixtures/run-repo.sh, data.tar.xz as in the archive (RUN_REPO_COMPRESSION=gzip
#     for quicker setup). Interleaved, the order alternating. Target: <= 1x.
#  2. soname index: a full-size Contents-amd64 (~150 MB unpacked, generated here: shared libraries and their -dev
#     packages, programs, Python modules, Go sources, icon themes, documentation; some files in two packages) is
#     added to the same repository. Timed in-process by pkgs/benches/soname_index.rs: building the index from the
#     .gz as `fhskit pkgs update` does after the download (streaming decompression, scan, sort, write) and lookups
#     (the hits plus the preferred provider); from the command line: the whole `fhskit pkgs update` into a fresh
#     cache, and `fhskit locate SONAME` against `fhskit --version` (process start). Targets: build <= 2 s,
#     lookup <= 1 ms.
#
# Nothing is deleted until the end: on ext4 without a journal, files created within a minute or so of a large
# deletion pay for skipping the freed inodes, which would tax whichever side ran after it. That needs ~0.6 GB of
# disk per run in $TMPDIR (default /tmp).
#
# usage: sh benches/pkgs.sh [RUNS]   (root; needs python3, apt-get, dpkg-dev, gpg, gzip)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-5}
roots="curl python3 git gnupg"
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
bench_bin=$(cargo bench -j2 -p pkgs --bench soname_index --no-run 2>&1 | sed -n 's/^ *Executable .*(\(.*\))$/\1/p')
work=$(mktemp -d "${TMPDIR:-/tmp}/fhskit-bench-pkgs.XXXXXX")
server=
trap '[ -z "$server" ] || kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
# Copies: the shared target directory may be rebuilt by someone else while this runs.
cp "${CARGO_TARGET_DIR:-target}/release/fhskit" "$work/fhskit"
cp "$bench_bin" "$work/soname_index"
fhskit="$work/fhskit"
export XDG_CONFIG_HOME="$work/config"

# The synthetic Contents lines (sorted into the repository's Contents-amd64 by run-repo.sh) and 1000 sonames to
# look up.
python3 - "$work/contents-synthetic" 150000000 <<'EOF'
import random, sys
out, target = sys.argv[1], int(sys.argv[2])
rng = random.Random(6)
syll = ("ab ac al an ar ba be bi bo ca ce ch co da de di do el en er ex fa fi fo ga ge gl go gr ha he hi id im in io "
        "ka ke ki la le li lo lu ma me mi mo mu na ne ni no ob od ol om on op or os pa pe pi po pr qu ra re ri ro ru sa "
        "se si so st su ta te th ti to tr tu ul un ur us va ve vi vo wa we xa xe ya yo za ze zo").split()
def word(lo=2, hi=4):
    return "".join(rng.choice(syll) for _ in range(rng.randint(lo, hi)))
lines, sonames, size = [], [], 0
def add(path, owners):
    global size
    line = f"{path:<60} {','.join(owners)}\n"
    lines.append(line)
    size += len(line)
def doc(sec, pkg):
    for f in ("changelog.Debian.gz", "copyright"):
        add(f"usr/share/doc/{pkg}/{f}", [f"{sec}/{pkg}"])
triplet = "usr/lib/x86_64-linux-gnu"
locales = "de fr es it ja pt_BR ru zh_CN nl pl sv cs fi da ko tr".split()
while size < target:
    stem = word()
    kind = rng.random()
    if kind < 0.22:  # a shared library, its -dev package, sometimes plugins
        ver = rng.randint(0, 9)
        sec = rng.choice(["libs", "libs", "libs", "non-free/libs", "contrib/libs"])
        pkg = f"lib{stem}{ver}" + ("t64" if rng.random() < 0.2 else "")
        so = f"lib{stem}.so.{ver}"
        sonames.append(so)
        owners = [f"{sec}/{pkg}"] + ([f"{sec}/lib{stem}{ver}-compat"] if rng.random() < 0.02 else [])
        add(f"{triplet}/{so}", owners)
        add(f"{triplet}/{so}.{rng.randint(0, 30)}.{rng.randint(0, 9)}", owners)
        doc(sec, pkg)
        if rng.random() < 0.15:
            for _ in range(rng.randint(2, 20)):
                add(f"{triplet}/{stem}/plugins/lib{word(1, 3)}.so", [f"{sec}/{pkg}"])
        dev = f"libdevel/lib{stem}-dev"
        for f in (f"lib{stem}.so", f"lib{stem}.a", f"pkgconfig/{stem}.pc"):
            add(f"{triplet}/{f}", [dev])
        for _ in range(rng.randint(1, 40)):
            add(f"usr/include/{stem}/{word(1, 3)}.h", [dev])
        doc("libdevel", f"lib{stem}-dev")
    elif kind < 0.40:  # a program
        sec = rng.choice(["utils", "admin", "net", "text", "graphics", "sound", "games", "x11", "science", "editors"])
        own = [f"{sec}/{stem}"]
        add(f"usr/{'games' if sec == 'games' else 'bin'}/{stem}", own)
        for _ in range(rng.randint(0, 3)):
            add(f"usr/bin/{stem}-{word(1, 2)}", own)
        add(f"usr/share/man/man1/{stem}.1.gz", own)
        for _ in range(rng.randint(0, 60)):
            ext = rng.choice(["png", "xml", "ui", "svg", "dat", "json"])
            add(f"usr/share/{stem}/{word(1, 2)}/{word(1, 3)}.{ext}", own)
        if rng.random() < 0.3:
            for ll in rng.sample(locales, rng.randint(1, len(locales))):
                add(f"usr/share/locale/{ll}/LC_MESSAGES/{stem}.mo", own)
        if rng.random() < 0.2:
            for _ in range(rng.randint(1, 6)):
                add(f"usr/lib/{stem}/lib{word(1, 2)}.so", own)  # a private library directory
        doc(sec, stem)
    elif kind < 0.62:  # a Python module, sometimes with extension modules
        own = [f"python/python3-{stem}"]
        for _ in range(rng.randint(3, 80)):
            add(f"usr/lib/python3/dist-packages/{stem}/{word(1, 2)}/{word(1, 3)}.py", own)
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 5)):
                add(f"usr/lib/python3/dist-packages/{stem}/_{word(1, 2)}.cpython-311-x86_64-linux-gnu.so", own)
        doc("python", f"python3-{stem}")
    elif kind < 0.80:  # Go sources: long paths
        org = word()
        pkg = f"golang-github-{org}-{stem}-dev"
        for _ in range(rng.randint(5, 120)):
            add(f"usr/share/gocode/src/github.com/{org}/{stem}/{word(1, 2)}/{word(2, 4)}_{word(1, 2)}.go",
                [f"golang/{pkg}"])
        doc("golang", pkg)
    elif kind < 0.90:  # an icon theme
        sec = rng.choice(["x11", "fonts", "gnome", "kde"])
        pkg = f"{stem}-icon-theme"
        for _ in range(rng.randint(10, 150)):
            size_dir = rng.choice(["16x16", "22x22", "24x24", "32x32", "48x48", "64x64", "scalable"])
            kind_dir = rng.choice(["apps", "actions", "mimetypes", "places"])
            add(f"usr/share/icons/{stem}/{size_dir}/{kind_dir}/{word(2, 4)}.png", [f"{sec}/{pkg}"])
        doc(sec, pkg)
    else:  # documentation and data, sometimes shared by two packages
        sec = rng.choice(["doc", "misc", "perl", "ruby", "javascript", "tex"])
        pkg = f"{stem}-{rng.choice(['doc', 'data', 'common'])}"
        owners = [f"{sec}/{pkg}"] + ([f"{sec}/{stem}-extra"] if rng.random() < 0.05 else [])
        for _ in range(rng.randint(5, 100)):
            top = rng.choice(["doc", "perl5", "javascript", "texmf"])
            ext = rng.choice(["html", "pm", "js", "sty", "txt"])
            add(f"usr/share/{top}/{stem}/{word(1, 2)}/{word(1, 3)}.{ext}", owners)
        doc(sec, pkg)
with open(out, "w") as f:
    f.writelines(lines)
with open(out + ".queries", "w") as f:
    f.writelines(s + "\n" for s in rng.sample(sonames, 1000))
EOF

RUN_REPO_COMPRESSION=${RUN_REPO_COMPRESSION:-xz} RUN_REPO_EXTRA_CONTENTS="$work/contents-synthetic" \
    sh tests/fixtures/run-repo.sh "$work/repo-build" $roots >/dev/null
rm "$work/contents-synthetic"
repo="$work/repo-build/repo"
. benches/serve.sh
serve_dir "$repo"

python3 - "$runs" "$fhskit" "$work" "$repo" "$port" "$roots" <<'EOF'
import glob, json, os, shutil, statistics, subprocess, sys, time
runs, fhskit, work, repo, port, roots = sys.argv[1:]
runs, roots = int(runs), roots.split()
spec = f"[signed-by={repo}/key.gpg arch=amd64] http://127.0.0.1:{port}/ testing main"
quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
npkgs = len(os.listdir(f"{repo}/pool/main"))
contents = f"{repo}/dists/testing/main/Contents-amd64"
queries = f"{work}/contents-synthetic.queries"

def timed(argv, env=None):
    t = time.perf_counter()
    subprocess.run(argv, env=env, **quiet)
    return time.perf_counter() - t

# One `pkgs update` (its indexes are copied into each run's fresh cache) and one `apt-get update`.
base = dict(os.environ, XDG_CACHE_HOME=f"{work}/update-cache", FHSKIT_STORE=f"{work}/unused-store")
subprocess.run([fhskit, "pkgs", "update", "--repo", spec], env=base, **quiet)
apt_dir = f"{work}/apt"
for d in ["lists/partial", "cache/archives/partial", "etc/parts", "etc/prefs"]:
    os.makedirs(f"{apt_dir}/{d}")
open(f"{apt_dir}/status", "w").close()
with open(f"{apt_dir}/etc/sources.list", "w") as f:
    f.write(f"deb [arch=amd64 signed-by={repo}/key.gpg] http://127.0.0.1:{port}/ testing main\n")
apt_opts = ["-o", f"Dir::State::Lists={apt_dir}/lists", "-o", f"Dir::State::status={apt_dir}/status",
            "-o", f"Dir::Cache={apt_dir}/cache", "-o", f"Dir::Etc::SourceList={apt_dir}/etc/sources.list",
            "-o", f"Dir::Etc::SourceParts={apt_dir}/etc/parts", "-o", f"Dir::Etc::Preferences={apt_dir}/etc/prefs",
            "-o", "APT::Architecture=amd64", "-o", "Debug::NoLocking=1", "-qq"]
if os.geteuid() == 0:
    apt_opts += ["-o", "APT::Sandbox::User=root"]
subprocess.run(["apt-get", *apt_opts, "update"], **quiet)

def ours(i):
    d = f"{work}/runs/{i}/fhskit"
    os.makedirs(f"{d}/cache/fhskit")
    shutil.copytree(f"{work}/update-cache/fhskit/indexes", f"{d}/cache/fhskit/indexes")
    e = dict(os.environ, XDG_CACHE_HOME=f"{d}/cache", FHSKIT_STORE=f"{d}/store")
    t = timed([fhskit, "pkgs", "fetch", "--repo", spec, "--no-host", *roots], e)
    return t, len(os.listdir(f"{d}/cache/fhskit/debs"))

def apt(i):
    d = f"{work}/runs/{i}/apt"
    os.makedirs(f"{d}/archives/partial")
    os.makedirs(f"{d}/root")
    t0 = time.perf_counter()
    subprocess.run(["apt-get", *apt_opts, "-o", f"Dir::Cache::Archives={d}/archives", "install", "-y",
                    "--no-install-recommends", "--download-only", *roots], **quiet)
    debs = sorted(glob.glob(f"{d}/archives/*.deb"))
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, f"{d}/root"], check=True)
    return time.perf_counter() - t0, len(debs)

o, a = [], []
for i in range(runs):
    for side in ([ours, apt] if i % 2 == 0 else [apt, ours]):
        t, n = side(i)
        (o if side is ours else a).append(t)
        if n != npkgs:
            raise SystemExit(f"{side.__name__} fetched {n} packages, the repository has {npkgs}")
mo, ma = statistics.median(o), statistics.median(a)

# Soname index: in-process build and lookups, then the command line.
bench = json.loads(subprocess.run([f"{work}/soname_index", contents + ".gz", queries, str(max(5, runs))],
                                  check=True, capture_output=True, text=True).stdout)
upd = []
for i in range(max(3, runs)):
    e = dict(os.environ, XDG_CACHE_HOME=f"{work}/update-{i}", FHSKIT_STORE=f"{work}/unused-store")
    upd.append(timed([fhskit, "pkgs", "update", "--repo", spec], e))
wanted = open(queries).read().split()
loc, floor = [], []
for q in wanted[:max(20, 4 * runs)]:
    loc.append(timed([fhskit, "locate", "--repo", spec, q], base))
    floor.append(timed([fhskit, "--version"]))
ml, mf = statistics.median(loc) * 1000, statistics.median(floor) * 1000

print(f"fetch of the closure of {' '.join(roots)}: {npkgs} packages, "
      f"{sum(os.path.getsize(p) for p in glob.glob(f'{repo}/pool/main/*.deb')) / 1e6:.0f} MB of .deb; "
      f"median of {runs} interleaved runs")
print(f"  fhskit pkgs fetch --no-host (resolve, download, verify, unpack, add to the store): {mo:6.2f} s")
print(f"  apt-get install --download-only + dpkg-deb -x of each .deb:                      {ma:6.2f} s")
print(f"soname index from Contents-amd64.gz: {os.path.getsize(contents) / 1e6:.0f} MB unpacked, "
      f"{bench['contents_gz_bytes'] / 1e6:.1f} MB compressed, {bench['lines']} lines -> {bench['entries']} entries of "
      f"{bench['packages']} packages, index {bench['index_bytes'] / 1e6:.1f} MB")
print(f"  build in-process: best {bench['build_ms_best']:.0f} ms, median {bench['build_ms_median']:.0f} ms")
print(f"  fhskit pkgs update (download, verify, Packages, index): median {statistics.median(upd):.2f} s")
print(f"  lookup in-process: median {bench['lookup_ns_median'] / 1000:.1f} us, p99 {bench['lookup_ns_p99'] / 1000:.1f} us,"
      f" max {bench['lookup_ns_max'] / 1000:.1f} us; a soname nothing ships {bench['miss_ns_median'] / 1000:.1f} us;"
      f" open + lookup {bench['open_and_lookup_ns_median'] / 1000:.1f} us")
print(f"  fhskit locate: median {ml:.1f} ms (fhskit --version: {mf:.1f} ms)")
print()
print(f"{'benchmark':44s} {'fhskit':>10s} {'anchor':>10s} {'ratio':>7s}  target")
print(f"{'fetch ' + str(npkgs) + ' packages into the store (s)':44s} {mo:10.2f} {ma:10.2f} {mo / ma:6.2f}x  <= 1x (apt+dpkg)")
print(f"{'soname index build (s)':44s} {bench['build_ms_median'] / 1000:10.2f} {'':>10s} {'':>7s}  <= 2 s")
print(f"{'soname lookup (ms)':44s} {bench['lookup_ns_median'] / 1e6:10.4f} {'':>10s} {'':>7s}  <= 1 ms")
print(f"{'fhskit locate, whole process (ms)':44s} {ml:10.1f} {mf:10.1f} {ml / mf:6.2f}x  (anchor: fhskit --version)")
EOF
