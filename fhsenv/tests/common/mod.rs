//! Shared test harness: world-readable temporary directories and fixture package trees made from the host's glibc
//! plus libraries and programs compiled from `tests/fixtures/fhsenv-*.c` during the test run.
//!
//! Also included by the `cli` crate's `env_*` tests (through a `#[path]` module).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A temporary directory every user can read, so uid 65534 can use what the test builds in it.
pub fn world_readable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("fhsenv-test-").tempdir_in("/tmp").expect("create temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    dir
}

pub fn cc(args: &[&str]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc).args(args).output().expect("run the C compiler");
    assert!(out.status.success(), "{cc} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
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

fn symlink(target: &str, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// Package directories of the fixture env.
#[derive(Debug)]
pub struct Packages {
    /// Host glibc copied into a Debian-shaped tree (`lib/x86_64-linux-gnu`, `lib64/ld-linux-x86-64.so.2`).
    pub glibc: PathBuf,
    /// `usr/lib/libfoo.so.1.0` (soname `libfoo.so.1`, no soname link), `libfoo.so` and `libbar.so.1`.
    pub libfoo: PathBuf,
    /// `usr/bin/fhsenv-probe` linked against libfoo, plus a conflicting `usr/bin/dup`.
    pub app: PathBuf,
    /// A second package also providing `usr/bin/dup` (loses).
    pub other: PathBuf,
    /// 32-bit glibc and libfoo (`usr/lib32`, `lib/i386-linux-gnu`), if the host has a 32-bit toolchain.
    pub multi: Option<PathBuf>,
}

const GLIBC_LIBS: [&str; 4] = ["libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0"];

/// Builds the fixture packages under `root/pkgs`.
pub fn make_packages(root: &Path) -> Packages {
    let pkgs = root.join("pkgs");
    let glibc = pkgs.join("glibc");
    for lib in GLIBC_LIBS {
        let host = Path::new("/lib/x86_64-linux-gnu").join(lib);
        if host.exists() {
            copy(&host, &glibc.join("lib/x86_64-linux-gnu").join(lib));
        }
    }
    copy(
        &std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap(),
        &glibc.join("lib64/ld-linux-x86-64.so.2"),
    );
    std::fs::create_dir_all(glibc.join("var/lib")).unwrap();

    let libfoo = pkgs.join("foo");
    let libdir = libfoo.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    let src = fixtures_dir().join("fhsenv-libfoo.c");
    cc(&[
        "-shared",
        "-fPIC",
        "-Wl,-soname,libfoo.so.1",
        "-o",
        libdir.join("libfoo.so.1.0").to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    symlink("libfoo.so.1.0", &libdir.join("libfoo.so"));
    // A second library nothing links against: found only through dlopen and the env's ld.so.cache.
    cc(&[
        "-shared",
        "-fPIC",
        "-Wl,-soname,libbar.so.1",
        "-o",
        libdir.join("libbar.so.1").to_str().unwrap(),
        src.to_str().unwrap(),
    ]);

    let app = pkgs.join("app");
    std::fs::create_dir_all(app.join("usr/bin")).unwrap();
    let probe = fixtures_dir().join("fhsenv-probe.c");
    cc(&[
        "-o",
        app.join("usr/bin/fhsenv-probe").to_str().unwrap(),
        probe.to_str().unwrap(),
        "-L",
        libdir.to_str().unwrap(),
        "-lfoo",
        "-ldl",
    ]);
    std::fs::write(app.join("usr/bin/dup"), "app\n").unwrap();
    let other = pkgs.join("other");
    std::fs::create_dir_all(other.join("usr/bin")).unwrap();
    std::fs::write(other.join("usr/bin/dup"), "other\n").unwrap();
    std::fs::create_dir_all(other.join("etc")).unwrap();
    std::fs::write(other.join("etc/other.conf"), "x=1\n").unwrap();

    let multi = Path::new("/usr/lib32/libc.so.6").exists().then(|| {
        let multi = pkgs.join("multi");
        copy(Path::new("/usr/lib32/libc.so.6"), &multi.join("usr/lib32/libc.so.6"));
        copy(
            &std::fs::canonicalize("/usr/lib32/ld-linux.so.2").unwrap(),
            &multi.join("usr/lib32/ld-linux.so.2"),
        );
        let dir = multi.join("usr/lib/i386-linux-gnu");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("libfoo.so.1");
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-m32", "-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap();
        assert!(status.success(), "cc -m32 failed");
        multi
    });
    Packages { glibc, libfoo, app, other, multi }
}

/// Writes an `env.toml` for the fixture packages with extra TOML appended.
pub fn write_env_toml(root: &Path, packages: &Packages, extra: &str) -> PathBuf {
    let list = |paths: &[&Path]| {
        paths.iter().map(|p| format!("{:?}", p.display().to_string())).collect::<Vec<_>>().join(", ")
    };
    let mut text = format!(
        "name = \"fixture\"\npackages = [{}]\n",
        list(&[&packages.glibc, &packages.libfoo, &packages.app, &packages.other])
    );
    if let Some(multi) = &packages.multi {
        text.push_str(&format!("multi_packages = [{}]\n", list(&[multi])));
    }
    text.push_str(extra);
    let path = root.join("env.toml");
    std::fs::write(&path, text).unwrap();
    path
}
