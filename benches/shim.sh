#!/usr/bin/env bash
# ld-shim start-up benchmark: a hello world started through the shim vs. directly, in one run, variants interleaved
# (benches/shim/spawn.c), medians of wall and CPU time; then the extra syscalls (strace -c) and page faults
# (perf stat) per start, and the shim's size. Target from issue 5: <= 30 us added, <= 10 extra syscalls.
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

echo "ld-shim start-up, $rounds interleaved rounds per variant, $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/spawn" "$rounds" \
    "direct" - "$work/hello" \
    "shim, NIX_LD_LIBRARY_PATH='' (pure)" "NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=" "$work/hello-shim" \
    "shim, NIX_LD_LIBRARY_PATH=dir" "NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=$work/libdir" "$work/hello-shim" \
    "shim, config file, empty env" - "$work/hello-installed" \
    "direct, LD_LIBRARY_PATH=dir" "LD_LIBRARY_PATH=$work/libdir" "$work/hello"

count_syscalls() {
    if ! command -v strace >/dev/null; then echo "n/a (no strace)"; return; fi
    env -i "$@" strace -f -qq -c -o "$work/strace.txt" "${program}" >/dev/null 2>&1 || true
    awk '$NF == "total" {print $4}' "$work/strace.txt"
}
faults() {
    if ! command -v perf >/dev/null; then echo "n/a"; return; fi
    env -i "$@" perf stat -x, -r 100 -e page-faults "${program}" 2>&1 >/dev/null | cut -d, -f1 | tail -1
}
echo
printf '%-36s %10s %12s\n' "variant" "syscalls" "page faults"
program=$work/hello; printf '%-36s %10s %12s\n' "direct" "$(count_syscalls)" "$(faults)"
program=$work/hello-shim
printf '%-36s %10s %12s\n' "shim, NIX_LD_LIBRARY_PATH=''" "$(count_syscalls NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=)" \
    "$(faults NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=)"
printf '%-36s %10s %12s\n' "shim, NIX_LD_LIBRARY_PATH=dir" \
    "$(count_syscalls NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=$work/libdir)" "$(faults NIX_LD=$host_ld NIX_LD_LIBRARY_PATH=$work/libdir)"
program=$work/hello-installed; printf '%-36s %10s %12s\n' "shim, config file, empty env" "$(count_syscalls)" "$(faults)"
echo
size=$(stat -c %s "$shim")
echo "shim size: $size bytes (stripped; limit 32768)"
