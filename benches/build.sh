#!/bin/sh
# Benchmarks of the builder (issue 16) against nix-build 2.8 (nix-bin) in the same run, each pair interleaved,
# medians and ratios printed. Both tools evaluate the same file and build into a fresh Nix-style chroot store
# (`local?root=DIR`, which both sandbox), with busybox added to it beforehand (not timed):
#
#  1. wide:  200 trivial independent derivations, -j2.   Target: median wall <= 1x nix-build's.
#  2. chain: a chain of 50 derivations, each using the previous one's output.   Target: <= 1x.
#  3. peak RSS of the fhskit process in (1) against nix-build's.   Target: <= 1x.
#  4. sandbox set-up per build: fhskit building (1) with -j1 into an fhskit store with and without the sandbox; the
#     difference divided by the number of builds.   Target: <= 10 ms.
#
# usage: sh benches/build.sh [RUNS]   (default 5; root, nix-bin, busybox-static, python3)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-build.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/src/busybox/bin"
cp /bin/busybox "$work/src/busybox/bin/busybox"
ln -s busybox "$work/src/busybox/bin/sh"

python3 - "$runs" "$fhskit" "$work" <<'EOF'
import os, shutil, statistics, subprocess, sys, time
runs, fhskit, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
bbsrc = f"{work}/src/busybox"
NIXOPTS = ["--option", "substituters", "", "--option", "build-users-group", ""]
env = dict(os.environ, NIX_CONFIG="build-users-group =", XDG_CONFIG_HOME=f"{work}/config")
env.pop("FHSKIT_STORE", None)

def run(argv, extra_env=None):
    e = dict(env, **(extra_env or {}))
    p = subprocess.run(argv, env=e, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {p.stderr.strip()}")
    return p.stdout

def timed(argv, extra_env=None):
    """Wall seconds and peak RSS (KiB) of one run; a failure stops the benchmark."""
    e = dict(env, **(extra_env or {}))
    with open(f"{work}/stderr", "w+b") as errfile:
        start = time.perf_counter()
        p = subprocess.Popen(argv, env=e, stdout=subprocess.DEVNULL, stderr=errfile)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")
    if status != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {err.strip()[-2000:]}")
    timed.cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss

def rmtree(path):
    if os.path.exists(path):
        subprocess.run(["chmod", "-R", "u+w", path], check=True)
        shutil.rmtree(path)

def fresh_chroot(name):
    root = f"{work}/{name}"
    rmtree(root)
    os.makedirs(root)
    bb = run([fhskit, "store", "add", bbsrc], {"FHSKIT_STORE": f"local?root={root}"}).strip()
    return root, bb

def expr_file(kind, bb):
    path = f"{work}/{kind}.nix"
    mk = f'''let bb = builtins.storePath "{bb}";
  mk = name: script: derivation {{ inherit name; system = builtins.currentSystem; builder = "${{bb}}/bin/sh"; args = [ "-c" script ]; }};'''
    if kind == "wide":
        body = mk + '\nin builtins.genList (i: mk "wide-${toString i}" "echo $name > $out") 200\n'
    else:
        body = mk + '''
  chain = n: if n == 0 then mk "chain-0" "echo 0 > $out"
    else let prev = chain (n - 1); in mk "chain-${toString n}" "cat ${prev} > $out; echo ${toString n} >> $out";
in chain 49
'''
    with open(path, "w") as f:
        f.write(body)
    return path

def fhskit_build(kind, extra=()):
    root, bb = fresh_chroot("f")
    return timed([fhskit, "build", expr_file(kind, bb), "--no-out-link", "-j", "2", *extra],
                 {"FHSKIT_STORE": f"local?root={root}"})

def nix_build(kind):
    root, bb = fresh_chroot("n")
    return timed(["nix-build", expr_file(kind, bb), "--no-out-link", "-j", "2", "--store", f"local?root={root}",
                  *NIXOPTS])

rows = []
for kind in ["wide", "chain"]:
    ours, theirs = [], []
    fhskit_build(kind)  # warm-up pair, not counted
    nix_build(kind)
    for i in range(runs):
        pair = [(ours, lambda: fhskit_build(kind)), (theirs, lambda: nix_build(kind))]
        if i % 2:
            pair.reverse()
        for acc, f in pair:
            acc.append(f())
    a = statistics.median(t for t, _ in ours)
    b = statistics.median(t for t, _ in theirs)
    ra = statistics.median(r for _, r in ours) / 1024
    rb = statistics.median(r for _, r in theirs) / 1024
    rows.append((kind, a, b, ra, rb))

# Sandbox set-up: the same 200 builds, -j1, into an fhskit store (files where the paths say), with and without.
def fhskit_plain(sandbox):
    base = f"{work}/plain"
    rmtree(base)
    bb = run([fhskit, "store", "add", bbsrc], {"FHSKIT_STORE": base}).strip()
    wall = timed([fhskit, "build", expr_file("wide", bb), "--no-out-link", "-j", "1", "--option", "sandbox",
                  sandbox], {"FHSKIT_STORE": base})[0]
    return wall, timed.cpu
on, off = [], []
for i in range(runs):
    on.append(fhskit_plain("true"))
    off.append(fhskit_plain("false"))
# CPU time (user + system of fhskit and its builders) is printed too: on a loaded machine the elapsed difference
# mostly measures the wait for a core, which CPU time does not count.
setup_cpu_ms = (statistics.median(c for _, c in on) - statistics.median(c for _, c in off)) / 200 * 1000
on, off = [w for w, _ in on], [w for w, _ in off]
setup_ms = (statistics.median(on) - statistics.median(off)) / 200 * 1000

print(f"builder benchmark, {runs} runs each (medians), fhskit vs nix-build 2.8, both into fresh local?root= stores")
print(f"{'workload':<34} {'fhskit':>9} {'nix-build':>10} {'ratio':>7}  {'RSS fhskit':>10} {'RSS nix':>8} {'ratio':>6}")
for kind, a, b, ra, rb in rows:
    label = {"wide": "200 independent derivations, -j2", "chain": "chain of 50 derivations, -j2"}[kind]
    print(f"{label:<34} {a:>8.2f}s {b:>9.2f}s {a / b:>6.2f}x  {ra:>8.1f}MB {rb:>6.1f}MB {ra / rb:>5.2f}x")
print(f"sandbox set-up per build (200 builds -j1, sandbox true vs false): {setup_ms:.2f} ms elapsed "
      f"({statistics.median(on):.2f}s vs {statistics.median(off):.2f}s), {setup_cpu_ms:.2f} ms cpu; "
      f"load {os.getloadavg()[0]:.1f}")
EOF
