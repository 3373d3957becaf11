#!/usr/bin/env bash
# ld-shim start-up benchmark: a hello world started through the shim vs. directly, in one run, variants interleaved
# (benches/shim/spawn.c), medians of wall and CPU time; then the extra syscalls (strace -c) and page faults
# (perf stat) per start, and the shim's size. Target from issue 5: <= 30 us added, <= 10 extra syscalls.
# Each shim variant is paired with the direct start the loader would see anyway (the same LD_LIBRARY_PATH), so the
# "shim's own cost" lines leave out what glibc spends searching a library directory.
# nix-ld itself is not packaged here (it needs nightly Rust); loader-shim.md measured it at +30-34 us on this VM
# class, and "direct, LD_LIBRARY_PATH=dir" below is the same yardstick it used.
#
# usage: benches/shim.sh [ROUNDS]      (default 2000 rounds per variant)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2000}
target_dir=${CARGO_TARGET_DIR:-target}
host_ld=/lib64/ld-linux-x86-64.so.2

cargo build --release -p ld-shim -j2 -q
output=$(ls -t "$target_dir"/release/build/ld-shim-*/output | head -1)
shim=$(sed -n 's/^cargo::rustc-env=LD_SHIM_BIN=//p' "$output")
[ -x "$shim" ] || { echo "benches/shim.sh: cannot find the built shim (looked in $output)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/spawn" benches/shim/spawn.c
cc -O2 -o "$work/hello" tests/fixtures/shim-hello.c
# A short interpreter path, as installed ones are (the kernel resolves it on every start).
cp "$shim" "$work/ld-shim"
cc -O2 -o "$work/hello-shim" tests/fixtures/shim-hello.c "-Wl,--dynamic-linker=$work/ld-shim"
mkdir -p "$work/libdir"
# An installed tree for the config-file variant (what `fhskit shim install --root` writes).
root=$work/root
mkdir -p "$root/lib64" "$root/etc/fhskit" "$root/var/lib/fhskit/ld-shim/x86_64-linux/lib"
cp "$shim" "$root/lib64/ld-linux-x86-64.so.2"
ln -s "$host_ld" "$root/var/lib/fhskit/ld-shim/x86_64-linux/ld.so"
printf 'loader=/var/lib/fhskit/ld-shim/x86_64-linux/ld.so\nlibrary-path=/var/lib/fhskit/ld-shim/x86_64-linux/lib\n' \
    >"$root/etc/fhskit/ld-shim-x86_64-linux.conf"
cc -O2 -o "$work/hello-installed" tests/fixtures/shim-hello.c "-Wl,--dynamic-linker=$root/lib64/ld-linux-x86-64.so.2"

config_lib=$root/var/lib/fhskit/ld-shim/x86_64-linux/lib

echo "ld-shim start-up, $rounds interleaved rounds per variant, $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/spawn" "$rounds" \
    "direct" - "$work/hello" \
    "shim, NIX_LD_LIBRARY_PATH='' (pure)" "NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=" "$work/hello-shim" \
    "direct, LD_LIBRARY_PATH=dir" "LD_LIBRARY_PATH=$work/libdir" "$work/hello" \
    "shim, NIX_LD_LIBRARY_PATH=dir" "NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=$work/libdir" "$work/hello-shim" \
    "direct, LD_LIBRARY_PATH=config dir" "LD_LIBRARY_PATH=$config_lib" "$work/hello" \
    "shim, config file, empty env" - "$work/hello-installed" | tee "$work/times.txt"
# Rows 2, 4 and 6 against rows 1, 3 and 5: the columns are median, its delta, p10, its delta, CPU delta.
echo
echo "shim's own cost (each shim variant minus the direct start with the same library path):"
awk 'NR > 1 { median[NR-1] = $(NF-4); p10[NR-1] = $(NF-2); cpu[NR-1] = $NF; name[NR-1] = substr($0, 1, 36) }
     END {
         for (i = 2; i <= 6; i += 2)
             printf "  %s  median %+6.1f us (x%.3f)   p10 %+6.1f us   cpu %+6.1f us\n", name[i],
                 median[i] - median[i-1], median[i] / median[i-1], p10[i] - p10[i-1], cpu[i] - cpu[i-1]
     }' "$work/times.txt"

count_syscalls() {
    if ! command -v strace >/dev/null; then echo "n/a (no strace)"; return; fi
    env -i "$@" strace -f -qq -c -o "$work/strace.txt" "${program}" >/dev/null 2>&1 || true
    awk '$NF == "total" {print $4}' "$work/strace.txt"
}
faults() {
    if ! command -v perf >/dev/null; then echo "n/a"; return; fi
    env -i "$@" perf stat -x, -r 100 -e page-faults "${program}" 2>&1 >/dev/null | cut -d, -f1 | tail -1
}
# One row per pair: the direct start, the shim start, and what the shim added.
pair() {
    local label=$1 direct_env=$2 shim_program=$3 shim_env=$4 d_sys d_faults s_sys s_faults
    program=$work/hello
    # shellcheck disable=SC2086 # the environments are word lists on purpose
    d_sys=$(count_syscalls $direct_env); d_faults=$(faults $direct_env)
    program=$shim_program
    # shellcheck disable=SC2086
    s_sys=$(count_syscalls $shim_env); s_faults=$(faults $shim_env)
    local extra_sys=n/a extra_faults=n/a
    [[ $d_sys =~ ^[0-9]+$ && $s_sys =~ ^[0-9]+$ ]] && extra_sys=$((s_sys - d_sys))
    [[ $d_faults =~ ^[0-9]+$ && $s_faults =~ ^[0-9]+$ ]] && extra_faults=$((s_faults - d_faults))
    printf '%-30s %8s %8s %8s   %8s %8s %8s\n' "$label" "$d_sys" "$s_sys" "+$extra_sys" "$d_faults" "$s_faults" \
        "+$extra_faults"
}
echo
printf '%-30s %8s %8s %8s   %8s %8s %8s\n' "per start" "syscalls" "" "" "faults" "" ""
printf '%-30s %8s %8s %8s   %8s %8s %8s\n' "" "direct" "shim" "added" "direct" "shim" "added"
pair "pure (NIX_LD_LIBRARY_PATH='')" "" "$work/hello-shim" "NIX_LD=$host_ld NIX_LD_LIBRARY_PATH="
pair "NIX_LD_LIBRARY_PATH=dir" "LD_LIBRARY_PATH=$work/libdir" "$work/hello-shim" \
    "NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=$work/libdir"
pair "config file, empty env" "LD_LIBRARY_PATH=$config_lib" "$work/hello-installed" ""
echo
size=$(stat -c %s "$shim")
echo "shim size: $size bytes (stripped; limit 32768)"
