#!/bin/sh
# Benchmark of the evaluator on a real nixpkgs tree (issue 18) against nix-instantiate 2.8 (nix-bin) in the same
# run. Each tool works in its own chroot store (`local?root=DIR`, logical paths under /nix/store), filled by one
# uncounted run of every workload first, so what is timed is a warm run: the sources are already valid there.
# Runs of the two tools alternate; medians of wall time and the peak RSS of one more run are printed with ratios
# (fhskit / Nix):
#
#  1. `instantiate -A stdenv`                                        Target: <= 1x Nix's time, <= 0.8x its peak RSS.
#  2. `instantiate -A python3`                                       Target: <= 1x, <= 0.8x RSS.
#  3. `instantiate` of a dozen large packages in one run (-A each)   Target: <= 1x, <= 0.8x RSS.
#  4. the `drvPath` of every top-level attribute that Nix 2.8 can evaluate (`--eval --strict --json`; a `throw`
#     counts as null, as `tryEval` gives; attributes failing with an error tryEval cannot catch, which would end
#     the whole evaluation, are left out: eval/tests/upstream/evaluable-attrs.py finds them once per tree commit
#     and caches the list in ~/.cache/fhskit-bench)                   Target: <= 1x, <= 0.8x RSS.
# Both tools must print the same output for every workload (the same .drv paths, the same JSON), or it stops.
#
# usage: sh benches/eval-nixpkgs.sh TREE [RUNS]   (default 3; needs nix-bin and python3; FHSKIT=BIN to measure a
#        binary already built instead of building target/release/fhskit)
#   TREE: a nixpkgs tree with the whole Linux stdenv, kept outside the repository; docs/eval.md names the one
#   measured (auxolotl/core, a nixpkgs 24.05 fork).
set -eu
if [ $# -lt 1 ] || [ ! -f "$1/default.nix" ]; then
    echo "error: give a nixpkgs tree (no default.nix in '${1:-}')" >&2
    exit 2
fi
tree=$(cd "$1" && pwd)
runs=${2:-3}
cd "$(dirname "$0")/.."
command -v nix-instantiate >/dev/null || { echo "error: nix-instantiate not found (apt-get install nix-bin)" >&2; exit 2; }
if [ -n "${FHSKIT:-}" ]; then
    fhskit=$(realpath "$FHSKIT")
else
    cargo build --release -j2 --bin fhskit >/dev/null 2>&1 || { echo "error: building fhskit failed" >&2; exit 2; }
    fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/fhskit-bench-nixpkgs.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# Nix warns about its build users group on a machine without one and would ask its default cache for nothing.
export NIX_CONFIG="build-users-group =
substituters ="
unset NIX_PATH

echo "finding the attributes Nix 2.8 can evaluate (once per tree commit)" >&2
python3 eval/tests/upstream/evaluable-attrs.py "$tree" "local?root=$work/nix" \
    "${XDG_CACHE_HOME:-$HOME/.cache}/fhskit-bench" >"$work/attrs.json" || exit 1

python3 - "$runs" "$fhskit" "$work" "$tree" <<'EOF'
import os, statistics, subprocess, sys, time
runs, fhskit, work, tree = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
attrs_file = os.path.join(work, "attrs.json")
stores = {"fhskit": f"local?root={work}/fhskit", "nix": f"local?root={work}/nix"}
tools = {"fhskit": [fhskit, "instantiate"], "nix": ["nix-instantiate"]}
dozen = ["perl", "openssl", "curl", "git", "gcc", "llvm", "boost", "cmake", "glibc", "guile", "rustc", "lix"]
every = f"""let
  pkgs = import {tree} {{ }};
  names = builtins.fromJSON (builtins.readFile {attrs_file});
  try = v: let r = builtins.tryEval v; in if r.success then r.value else null;
  drvOf = n: try (let v = pkgs.${{n}}; in
    if builtins.isAttrs v && (v.type or null) == "derivation" then builtins.seq v.drvPath v.drvPath else null);
in builtins.listToAttrs (map (n: {{ name = n; value = drvOf n; }}) names)"""

def argv(tool, args):
    return tools[tool] + ["--store", stores[tool]] + args

workloads = [
    ("instantiate -A stdenv", ["-A", "stdenv", tree]),
    ("instantiate -A python3", ["-A", "python3", tree]),
    (f"instantiate {len(dozen)} packages", [x for a in dozen for x in ("-A", a)] + [tree]),
    # Read-write, as the instantiations are: the tree's sources it imports from the store must be there.
    ("drvPath of every attribute", ["--eval", "--read-write-mode", "--strict", "--json", "-E", every]),
]

def timed(cmd):
    """Wall seconds and stdout of one run; a failure stops the benchmark."""
    start = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:4])} … failed: {p.stderr.decode(errors='replace').strip()[-2000:]}")
    return wall, p.stdout

def peak_rss(cmd):
    """Peak RSS in KiB, from a separate run (wait4's rusage of the child)."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(p.pid, 0)
    return usage.ru_maxrss

print(f"tree: {tree}")
print(f"attributes Nix 2.8 can evaluate: {len(__import__('json').load(open(attrs_file)))}")
with open("/proc/loadavg") as f:
    print(f"load average at the start: {' '.join(f.read().split()[:3])}")
print(f"{'workload':30} {'fhskit':>9} {'nix':>9} {'ratio':>6} {'RSS fhskit':>11} {'RSS nix':>9} {'ratio':>6}  target")
for name, args in workloads:
    ours_argv, nix_argv = argv("fhskit", args), argv("nix", args)
    # The uncounted pair fills each store (and the page cache); the outputs must agree.
    _, a = timed(ours_argv)
    _, b = timed(nix_argv)
    # Nix 2.8 ends `--json` output without a newline; current Nix, which fhskit follows, ends it with one.
    if a.rstrip(b"\n") != b.rstrip(b"\n"):
        sys.exit(f"error: outputs differ for {name}:\n fhskit {a.decode()[:400]!r}\n nix    {b.decode()[:400]!r}")
    ours, theirs = [], []
    for i in range(runs):
        # Alternating order: a run just after the other tool's pays for the memory that one freed.
        pair = [(ours, ours_argv), (theirs, nix_argv)]
        for times, cmd in (pair if i % 2 == 0 else pair[::-1]):
            times.append(timed(cmd)[0])
    ro, rn = peak_rss(ours_argv), peak_rss(nix_argv)
    mo, mn = statistics.median(ours), statistics.median(theirs)
    print(f"{name:30} {mo*1000:7.0f}ms {mn*1000:7.0f}ms {mo/mn:5.2f}x {ro/1024:9.1f}MB {rn/1024:7.1f}MB {ro/rn:5.2f}x"
          "  <= 1x, <= 0.8x RSS", flush=True)
with open("/proc/loadavg") as f:
    print(f"load average at the end: {' '.join(f.read().split()[:3])}")
EOF
