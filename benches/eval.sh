#!/bin/sh
# Benchmarks of the evaluator (issue 8) against `nix-instantiate --eval --strict` (nix-bin) in the same run, each
# pair interleaved, medians of wall time and the peak RSS of both printed with ratios (fhskit / Nix):
#
#  1. fib 30, naive recursion.                          Target: <= 1x Nix's time, <= 1/2 of its peak RSS.
#  2. foldl' (a: b: a + b) 0 (genList (x: x) 1000000). Target: <= 1x time, <= 1/2 RSS.
#  3. a recursive set of 5,000 attributes, updated with `//` and mapped with mapAttrs, then summed. Target: <= 1x.
#  4. parsing and evaluating a generated 10,000-line file (let bindings, sets, lists, strings, functions).
#     Target: <= 1x.
# Both tools must print the same result for every workload, or the benchmark stops.
#
# usage: sh benches/eval.sh [RUNS]   (default 5; needs nix-bin and python3)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release -j2 --bin fhskit >/dev/null 2>&1
fhskit=$(realpath "${CARGO_TARGET_DIR:-target}/release/fhskit")
work=$(mktemp -d /tmp/fhskit-bench-eval.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Nix warns about its build users group on a machine without one; evaluation needs none.
export NIX_CONFIG="build-users-group ="

python3 - "$runs" "$fhskit" "$work" <<'EOF'
import os, statistics, subprocess, sys, time
runs, fhskit, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def write(name, text):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    return path

fib = write("fib.nix", "let fib = n: if n < 2 then n else fib (n - 1) + fib (n - 2); in fib 30\n")
fold = write("fold.nix", "builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x) 1000000)\n")
attrs = write("attrs.nix", """let
  n = 5000;
  names = builtins.genList (i: "a${toString i}") n;
  base = builtins.listToAttrs (map (k: { name = k; value = 1; }) names);
  set = rec {
    inherit base;
    doubled = builtins.mapAttrs (k: v: v * 2) base;
    merged = base // doubled // builtins.mapAttrs (k: v: v + total) (builtins.intersectAttrs base doubled);
    total = builtins.length (builtins.attrNames base);
    chain = builtins.foldl' (acc: k: acc // { ${k} = acc.${k} or 0 + 1; }) { } (builtins.genList (i: "k${toString (i / 10)}") 5000);
  };
in builtins.foldl' (a: k: a + set.merged.${k}) 0 names + builtins.length (builtins.attrNames set.chain)
""")

def big_file(lines):
    out = ["let", "  lib = {", "    add = a: b: a + b;", "    join = sep: xs: builtins.concatStringsSep sep xs;", "  };"]
    i = 0
    while len(out) < lines - 8:
        out.append(f"  v{i} = {{ name = \"item-{i}\"; n = {i}; tags = [ \"t{i % 7}\" \"u{i % 13}\" ]; }};")
        out.append(f"  s{i} = lib.join \"-\" (v{i}.tags ++ [ v{i}.name ]);")
        out.append(f"  f{i} = x: lib.add x v{i}.n;")
        i += 1
    out.append("  all = [")
    out.extend(f"    (builtins.stringLength s{j} + f{j} {j})" for j in range(i))
    out.append("  ];")
    out.append("in builtins.foldl' (a: b: a + b) 0 all")
    return "\n".join(out) + "\n"

big = write("big.nix", big_file(10000))

def timed(argv):
    """Wall seconds and stdout of one run; a failure stops the benchmark."""
    start = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    out, err = p.stdout, p.stderr
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {err.decode(errors='replace').strip()}")
    return wall, out

def peak_rss(argv):
    """Peak RSS in KiB, from a separate run (wait4's rusage of the child)."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(p.pid, 0)
    return usage.ru_maxrss

cases = [
    ("fib 30", fib, "<= 1x time, <= 1/2 RSS"),
    ("foldl' over genList 1e6", fold, "<= 1x time, <= 1/2 RSS"),
    ("5,000-attr rec set, //, mapAttrs", attrs, "<= 1x time"),
    ("parse + eval 10,000-line file", big, "<= 1x time"),
]
print(f"{'workload':36} {'fhskit':>9} {'nix':>9} {'ratio':>6} {'RSS fhskit':>11} {'RSS nix':>9} {'ratio':>6}  target")
for name, path, target in cases:
    ours_argv = [fhskit, "eval", "--strict", path]
    nix_argv = ["nix-instantiate", "--eval", "--strict", path]
    ours, theirs = [], []
    # One uncounted pair warms the page cache; then the order alternates, because a run just after the other
    # tool's is slowed by the memory that one freed (the VM hands freed pages back to its host).
    timed(ours_argv), timed(nix_argv)
    for i in range(runs):
        if i % 2:
            t, b = timed(nix_argv)
            theirs.append(t)
            t, a = timed(ours_argv)
            ours.append(t)
        else:
            t, a = timed(ours_argv)
            ours.append(t)
            t, b = timed(nix_argv)
            theirs.append(t)
        if a != b:
            sys.exit(f"error: results differ for {name}: fhskit {a!r}, nix {b!r}")
    ro, rn = peak_rss(ours_argv), peak_rss(nix_argv)
    mo, mn = statistics.median(ours), statistics.median(theirs)
    print(f"{name:36} {mo*1000:7.0f}ms {mn*1000:7.0f}ms {mo/mn:5.2f}x {ro/1024:9.1f}MB {rn/1024:7.1f}MB {ro/rn:5.2f}x  {target}")
EOF
