#!/bin/sh
# Benchmarks of fhsenv (issue 4), in one run, each side interleaved; median elapsed and mean CPU times, ratios:
#
#  1. start-up: `fhskit env run ENV -- true` against the equivalent `bwrap` command (the same mounts, translated
#     from fhskit's own `--dry-run` plan) and against a buildFHSEnv-style launch reproduced here (a bash wrapper that
#     builds the bwrap argument list with loops and `readlink -f`, then an init script that writes ld.so.conf, runs
#     `ldconfig` over the env's libraries, sources /etc/profile and execs). As root and as nobody (setpriv).
#     Targets: fhskit <= 1.0x bwrap, >= 8x faster than the buildFHSEnv-style launch.
#  2. build: an env of 200 packages (trees hard-linked from the files of 200 installed Debian packages) with
#     `fhskit env build` (symlink farm + ld.so.cache), best and median of several runs. Target: <= 1 s.
#
# usage: sh benches/fhsenv.sh [RUNS]   (root; needs bubblewrap, python3, util-linux's setpriv)
set -eu
cd "$(dirname "$0")/.."
runs=${1:-200}
cargo build --release -j2 -p cli >/dev/null 2>&1
work=$(mktemp -d /tmp/fhskit-bench-fhsenv.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
cp "${CARGO_TARGET_DIR:-target}/release/fhskit" "$work/fhskit"
fhskit="$work/fhskit"

# 200 package trees from the host's installed packages (hard links: the same files, no copying).
mkdir -p "$work/pkgs"
python3 - "$work/pkgs" <<'EOF'
import os, sys
out = sys.argv[1]
info = "/var/lib/dpkg/info"
chosen = []
names = sorted(n for n in os.listdir(info) if n.endswith(".list"))
# What both launchers need first (loader, C library, `true`, bash and ldconfig), whatever else is picked.
first = ("libc6:amd64.", "coreutils.", "bash.", "libtinfo6:amd64.", "libc-bin.")
names.sort(key=lambda n: not n.startswith(first))
for name in names:
    files = [l.strip() for l in open(os.path.join(info, name), errors="replace") if l.strip()]
    useful = [f for f in files if f.startswith(("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/etc/"))
              and os.path.isfile(f) and not os.path.islink(f)]
    if useful:
        chosen.append((name[:-5].replace(":", "_"), useful))
    if len(chosen) == 200:
        break
for pkg, files in chosen:
    root = os.path.join(out, pkg)
    for f in files:
        dest = os.path.join(root, f.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            os.link(f, dest)
        except OSError:
            with open(f, "rb") as src, open(dest, "wb") as dst:
                dst.write(src.read())
with open(os.path.join(os.path.dirname(out), "env.toml"), "w") as f:
    f.write('name = "bench"\nrun = ["true"]\npackages = [\n')
    for pkg, _ in chosen:
        f.write(f'    "{os.path.join(out, pkg)}",\n')
    f.write("]\n")
    # Extra binds, so the plan has about as many mounts as a buildFHSEnv launch (~45).
    for name in sorted(os.listdir("/usr/share"))[:25]:
        if os.path.isdir(os.path.join("/usr/share", name)):
            f.write(f'[[bind]]\nsource = "/usr/share/{name}"\ntarget = "/bench/{name}"\nread_only = true\n')
EOF
chmod -R a+rX "$work"

python3 - "$runs" "$fhskit" "$work" <<'EOF'
import os, shlex, statistics, subprocess, sys, time
runs, fhskit, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
env_toml = os.path.join(work, "env.toml")

# 2. build time
builds = []
for i in range(7):
    out = os.path.join(work, f"env-build-{i}")
    t = time.perf_counter()
    subprocess.run([fhskit, "env", "build", env_toml, "-o", out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    builds.append(time.perf_counter() - t)
env = os.path.join(work, "env")
os.rename(os.path.join(work, "env-build-0"), env)
subprocess.run(["chmod", "-R", "a+rX", env], check=True)
links = sum(len(f) for _, _, f in os.walk(env))

# The mount plan fhskit performs, translated into bwrap arguments.
plan = subprocess.run([fhskit, "env", "run", "--dry-run", env, "--", "true"], check=True,
                      capture_output=True, text=True).stdout.splitlines()
bw = ["bwrap"]
mounts = 0
for line in plan:
    w = line.split()
    if w[0] == "bind":
        src, dst, flags = w[1], w[2], w[3:]
        kind = "--dev-bind" if dst == "/dev" else ("--ro-bind" if "ro" in flags else "--bind")
        bw += [kind + ("-try" if "optional" in flags else ""), src, dst]
        mounts += 1
    elif w[0] == "tmpfs":
        bw += ["--perms", "0" + w[2].split("=")[1], "--tmpfs", w[1]] + (["--remount-ro", w[1]] if "ro" in w[3:] else [])
        mounts += 1
    elif w[0] == "symlink":
        bw += ["--symlink", w[3], w[1]]
    elif w[0] == "proc":
        bw += ["--proc", w[1]]
        mounts += 1
    elif w[0] == "overlay":
        raise SystemExit("overlay plans are not benchmarked")
    elif w[0] == "chdir":
        bw += ["--chdir", w[1]]
bw += ["true"]

# A buildFHSEnv-style launcher: argument building in bash at every start, ldconfig and a profile in the sandbox.
init = os.path.join(work, "init.sh")
with open(init, "w") as f:
    f.write("""#!/bin/bash
# Runs inside the sandbox at every start, as a buildFHSEnv launch does: loader config, ldconfig, profile, exec.
printf '%s\\n' /usr/lib /usr/lib32 /usr/lib64 > /etc/ld.so.conf
ldconfig -X -C /etc/ld.so.cache -f /etc/ld.so.conf
[ -e /etc/profile ] && source /etc/profile
exec "$@"
""")
wrapper = os.path.join(work, "buildfhsenv-style.sh")
with open(wrapper, "w") as f:
    f.write(f"""#!/bin/bash
# Builds the bwrap argument list at every start, as buildFHSEnv's wrapper does (loops, readlink forks).
set -e
env={shlex.quote(env)}
init={shlex.quote(init)}
ignored=(/nix /dev /proc /etc /usr /bin /sbin /lib /lib32 /lib64 /libx32 /tmp)
args=()
for dir in /*; do
    skip=0
    for i in "${{ignored[@]}}"; do [ "$dir" = "$i" ] && skip=1; done
    [ $skip = 1 ] && continue
    [ -d "$dir" ] || continue
    args+=(--bind "$(readlink -f "$dir")" "$dir")
done
args+=(--tmpfs /etc)
for f in passwd group hosts resolv.conf nsswitch.conf localtime machine-id host.conf; do
    if [ -e "/etc/$f" ]; then
        args+=(--ro-bind "$(readlink -f /etc/$f)" "/etc/$f")
    fi
done
for d in ssl fonts pki; do
    [ -d "/etc/$d" ] && args+=(--ro-bind "/etc/$d" "/etc/$d")
done
for f in "$env"/etc/*; do
    name=$(basename "$f")
    case "$name" in ld.so.cache|ld.so.conf|passwd|group|hosts|resolv.conf|nsswitch.conf|localtime|machine-id|host.conf|ssl|fonts|pki) continue;; esac
    args+=(--ro-bind "$f" "/etc/$name")
done
args+=(--ro-bind "$env/usr" /usr --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib
       --symlink usr/lib64 /lib64 --symlink usr/lib32 /lib32 --dev-bind /dev /dev --proc /proc --bind /tmp /tmp
       --ro-bind "$init" /init --chdir "$(pwd)")
exec bwrap "${{args[@]}}" /init "$@"
""")
os.chmod(init, 0o755)
os.chmod(wrapper, 0o755)

as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
cases = {}
for user, prefix in [("root", []), ("nobody", as_nobody)]:
    cases[f"fhskit env run ({user})"] = prefix + [fhskit, "env", "run", env, "--", "true"]
    cases[f"bwrap, same mounts ({user})"] = prefix + bw
    cases[f"buildFHSEnv-style ({user})"] = prefix + [wrapper, "true"]
    cases[f"true alone ({user})"] = prefix + ["true"]
for name, argv in cases.items():
    r = subprocess.run(argv, cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{name} failed: {r.stderr.strip()}")
import resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
times = {k: [] for k in cases}
cpus = {k: [] for k in cases}
slow = {k for k in cases if "buildFHSEnv" in k}
for i in range(runs):
    for name, argv in cases.items():
        if name in slow and i % 5:
            continue  # the slow launcher gets a fifth of the runs
        c, t = cpu(), time.perf_counter()
        subprocess.run(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - t)
        cpus[name].append(cpu() - c)
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
# CPU time (user + system of every process started, setpriv included) does not count waiting for a core, so it
# stays meaningful on a loaded machine where elapsed time mostly measures the queue.
mcpu = {k: statistics.mean(v) * 1000 for k, v in cpus.items()}
print(f"start-up of `true`, median elapsed and mean CPU time of {runs} interleaved runs ({mounts} mounts in the plan),"
      f" ms, load {os.getloadavg()[0]:.1f}:")
for k, v in med.items():
    print(f"  {k:32s} {v:7.2f} elapsed {mcpu[k]:7.2f} cpu")
for user in ["root", "nobody"]:
    ours, bwrap = f"fhskit env run ({user})", f"bwrap, same mounts ({user})"
    print(f"  {user}: fhskit / bwrap = {med[ours] / med[bwrap]:.2f}x elapsed, {mcpu[ours] / mcpu[bwrap]:.2f}x cpu"
          f" (target <= 1.0x); buildFHSEnv-style / fhskit = {med[f'buildFHSEnv-style ({user})'] / med[ours]:.1f}x"
          f" (target >= 8x)")
print(f"env build of 200 packages ({links} links): best {min(builds)*1000:.0f} ms, "
      f"median {statistics.median(builds)*1000:.0f} ms (target <= 1000 ms)")
EOF
