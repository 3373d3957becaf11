//! Shared set-up for the `fhskit run/patch/generate/steam-run` tests: a private store and cache per test, fixture
//! compilation with the system `cc`, and the NixOS-like harness (`tests/fixtures/run-hide-host.sh` inside
//! `unshare --mount`), where the host's libraries are hidden and `/usr/bin` holds only `env`, entered with a
//! `mount` and an `fhskit` that fhskit patched into the store for themselves.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const FHSKIT: &str = env!("CARGO_BIN_EXE_fhskit");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        // Under /tmp: the harness and the fhs strategy keep /tmp visible.
        let dir = tempfile::Builder::new().prefix("fhskit-run-test-").tempdir_in("/tmp").unwrap();
        for d in ["store", "cache", "config", "home"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        World { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn envs(&self, cmd: &mut Command) {
        cmd.env("FHSKIT_STORE", self.path("store"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("HOME", self.path("home"))
            .env_remove("FHSKIT_DLOPEN")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
    }

    /// Runs the fhskit under test.
    pub fn fhskit(&self, args: &[&str]) -> Output {
        self.fhskit_with(FHSKIT, args)
    }

    pub fn fhskit_with(&self, exe: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        self.envs(&mut cmd);
        cmd.output().unwrap()
    }

    /// Compiles `sources` (names under tests/fixtures) into `out` with extra arguments.
    pub fn cc(&self, out: &Path, sources: &[&str], extra: &[&str]) {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        let mut cmd = Command::new("cc");
        cmd.arg("-o").arg(out);
        for s in sources {
            cmd.arg(fixtures().join(s));
        }
        cmd.args(extra);
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "cc failed: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// Copies the files of an installed Debian package (its own files only, none of its dependencies) into
    /// `dir`: the "unpacked without its dependencies" program. Returns `dir`.
    pub fn unpack_host_package(&self, package: &str, dir: &Path) -> PathBuf {
        let list = std::fs::read_to_string(format!("/var/lib/dpkg/info/{package}.list"))
            .or_else(|_| std::fs::read_to_string(format!("/var/lib/dpkg/info/{package}:amd64.list")))
            .unwrap();
        for line in list.lines() {
            let src = Path::new(line);
            let meta = std::fs::symlink_metadata(src).unwrap();
            if meta.is_file() {
                let dst = dir.join(line.trim_start_matches('/'));
                copy(src, &dst);
            }
        }
        dir.to_path_buf()
    }
}

/// Copies with `cp` in a child process. A file this multi-threaded test process writes itself would be open for
/// writing in any child another thread forks meanwhile, and executing it then fails with ETXTBSY.
pub fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let out = Command::new("cp").arg(from).arg(to).output().unwrap();
    assert!(
        out.status.success(),
        "cp {} {}: {}",
        from.display(),
        to.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Debian packages of fhskit's stdenv (shell and tools, the C compiler, zlib's development files, pkg-config);
/// the stdenv and shell tests re-pack them with their own extras into their repository.
pub const STDENV_PACKAGES: &[&str] = &[
    "bash",
    "dash",
    "coreutils",
    "findutils",
    "diffutils",
    "sed",
    "grep",
    "mawk",
    "tar",
    "gzip",
    "bzip2",
    "xz-utils",
    "make",
    "patch",
    "patchelf",
    "unzip",
    "gcc",
    "g++",
    "binutils",
    "libc6-dev",
    "zlib1g-dev",
    "pkgconf",
];

/// The Debian i386 packages of the i386 stdenv with their i386 closure, downloaded as the archive ships them by
/// `tests/fixtures/i386-stdenv-debs.sh` (`.ci/run` does, into `$TMPDIR/fhskit-i386-stdenv-debs`, or the directory
/// `FHSKIT_I386_DEBS` names): Debian's gcc:i386 cannot be installed beside gcc:amd64, so they cannot be re-packed
/// from the host. `Err` with what is missing when the directory is not complete.
pub fn i386_stdenv_debs() -> Result<PathBuf, String> {
    let dir = std::env::var_os("FHSKIT_I386_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("fhskit-i386-stdenv-debs"));
    let missing = || {
        format!(
            "the i386 stdenv's .deb files in {} (sh tests/fixtures/i386-stdenv-debs.sh {0}, as .ci/run does)",
            dir.display()
        )
    };
    // The script writes the list of requested packages last: without it the download is incomplete.
    let listed = std::fs::read_to_string(dir.join("packages")).map_err(|_| missing())?;
    let listed: Vec<&str> = listed.lines().collect();
    let absent: Vec<&str> = STDENV_PACKAGES.iter().copied().filter(|p| !listed.contains(p)).collect();
    if !absent.is_empty() {
        return Err(format!("{} (it lacks {})", missing(), absent.join(", ")));
    }
    Ok(dir)
}

/// Removes `/tmp/<prefix><pid>` directories whose process no longer runs and returns this process's own. A test
/// binary keeps such a directory in a static, which is never dropped: each run cleans up after the earlier ones.
pub fn process_dir(prefix: &str) -> PathBuf {
    for e in std::fs::read_dir("/tmp").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(prefix)
            && pid.bytes().all(|b| b.is_ascii_digit())
            && !Path::new("/proc").join(pid).exists()
        {
            // `rm` rather than remove_dir_all: the store inside may hold read-only directories.
            let _ = Command::new("chmod").arg("-R").arg("u+w").arg(e.path()).status();
            let _ = Command::new("rm").arg("-rf").arg(e.path()).status();
        }
    }
    PathBuf::from(format!("/tmp/{prefix}{}", std::process::id()))
}

/// A signed repository of the host's `packages` and their dependency closure, re-packed by
/// `tests/fixtures/run-repo.sh` into `/tmp/<prefix><pid>` (see [`process_dir`]) and served on 127.0.0.1 (by
/// `test_support::http`) until the process ends: its directory and port. Call it once per process.
pub fn served_repository(prefix: &str, packages: &[&str]) -> (PathBuf, u16) {
    served_repository_with(prefix, packages, None)
}

/// [`served_repository`] with the `.deb` files of `extra_debs` added as they are (`RUN_REPO_EXTRA_DEBS`).
pub fn served_repository_with(prefix: &str, packages: &[&str], extra_debs: Option<&Path>) -> (PathBuf, u16) {
    let dir = process_dir(prefix);
    // Re-packing ~100 host packages runs dpkg-query, dpkg-deb, dpkg-scanpackages and gpg; under heavy load one of
    // them has been seen to fail without a message (exit 25). The repository is the test's setup, not what it
    // tests: a second attempt from scratch is made before giving up.
    let mut failed = None;
    for _ in 0..2 {
        let _ = std::fs::remove_dir_all(&dir);
        let mut cmd = Command::new("sh");
        cmd.arg(fixtures().join("run-repo.sh")).arg(&dir).args(packages);
        if let Some(debs) = extra_debs {
            cmd.env("RUN_REPO_EXTRA_DEBS", debs);
        }
        let o = cmd.output().unwrap();
        if o.status.success() {
            failed = None;
            break;
        }
        eprintln!("building the repository failed:\n{}", text(&o));
        failed = Some(o);
    }
    if let Some(o) = failed {
        panic!("building the repository failed twice:\n{}", text(&o));
    }
    let server = test_support::http::Server::files(dir.join("repo"));
    let port = server.port();
    // The server stops when dropped; callers keep only the port, for the whole run.
    std::mem::forget(server);
    (dir, port)
}

/// A world whose fhskit uses only the repository of [`served_repository`] (`repo_dir`, served on `port`) for the
/// given architectures, with its index fetched and the named files of `tests/acceptance/` copied into its directory.
pub fn acceptance_world(repo_dir: &Path, port: u16, architectures: &[&str], files: &[&str]) -> World {
    let world = World::new();
    let config = world.path("config/fhskit");
    std::fs::create_dir_all(&config).unwrap();
    let architectures: Vec<String> = architectures.iter().map(|a| format!("\"{a}\"")).collect();
    std::fs::write(
        config.join("config.toml"),
        format!(
            "[pkgs]\nhost-sources = false\nhost-packages = false\narchitectures = [{}]\n\n[[pkgs.repository]]\n\
             url = \"http://127.0.0.1:{port}\"\nsuite = \"testing\"\ncomponents = [\"main\"]\nkeyring = \"{}\"\n",
            architectures.join(", "),
            repo_dir.join("repo/key.gpg").display()
        ),
    )
    .unwrap();
    ok(&world.fhskit(&["pkgs", "update"]));
    let copy = Command::new("cp")
        .arg("-r")
        .args(files.iter().map(|f| fixtures().join("../acceptance").join(f)))
        .arg(world.dir.path())
        .status()
        .unwrap();
    assert!(copy.success());
    world
}

pub fn text(o: &Output) -> String {
    format!(
        "status: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "command failed\n{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The NixOS-like harness: tools fhskit patched into the store for themselves.
pub struct Harness {
    pub fhskit: String,
    pub mount: String,
    pub env: String,
}

impl Harness {
    /// Patches fhskit, `mount` and `env` into the store (from the host's packages, offline).
    pub fn new(world: &World) -> Harness {
        let out = ok(&world.fhskit(&["patch", "--offline", FHSKIT]));
        let fhskit = format!("{}/bin/fhskit", out.trim());
        let tools = world.path("tools");
        let out = ok(&world.fhskit(&[
            "patch",
            "--offline",
            "--out",
            tools.to_str().unwrap(),
            "/usr/bin/mount",
            "/usr/bin/env",
        ]));
        assert!(out.contains("mount"), "{out}");
        Harness {
            fhskit,
            mount: tools.join("mount").display().to_string(),
            env: tools.join("env").display().to_string(),
        }
    }

    /// Runs `args` in a private mount namespace where the host's libraries are hidden.
    pub fn run(&self, world: &World, args: &[&str]) -> Output {
        let mut cmd = Command::new("unshare");
        if !nix_is_root() {
            cmd.arg("--map-root-user");
        }
        cmd.args(["--mount", "/bin/sh"])
            .arg(fixtures().join("run-hide-host.sh"))
            .arg(&self.mount)
            .arg(&self.env)
            .args(args);
        world.envs(&mut cmd);
        cmd.output().unwrap()
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
