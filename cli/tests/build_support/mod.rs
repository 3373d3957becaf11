//! Harness of the builder's end-to-end tests: a world-readable temporary directory with an fhskit store in it, a
//! static busybox (Debian's `busybox-static`) added to that store as the builders' shell, Nix files whose
//! derivations use it, `fhskit` run as root or as uid 65534 (setpriv), and an HTTP server on 127.0.0.1 for
//! fixed-output fetches.
#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Root,
    Nobody,
}

/// A test's directory and store.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub user: User,
    pub fhskit: PathBuf,
    /// The busybox store path.
    pub busybox: String,
}

/// The host's static busybox, if it has one.
pub fn static_busybox() -> Option<PathBuf> {
    let p = PathBuf::from("/bin/busybox");
    let out = Command::new("file").arg("-L").arg(&p).output().ok();
    let is_static = match out {
        Some(o) => String::from_utf8_lossy(&o.stdout).contains("statically linked"),
        // Without `file`: the busybox-static package ships /bin/busybox static.
        None => p.exists(),
    };
    (p.exists() && is_static).then_some(p)
}

/// Returns a reason when `user` cannot create user namespaces here.
fn userns_forbidden(user: User) -> Option<String> {
    let mut cmd = match user {
        User::Root => return None,
        User::Nobody => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "unshare"]);
            c
        }
    };
    let out =
        cmd.args(["--user", "--map-current-user", "--mount", "--pid", "--fork", "true"]).output().ok()?;
    (!out.status.success()).then(|| {
        format!("user namespaces unavailable for {user:?}: {}", String::from_utf8_lossy(&out.stderr).trim())
    })
}

/// The users to run a test as: root when the tests run as root, and uid 65534 when user namespaces allow.
pub fn users() -> Vec<User> {
    let mut users = Vec::new();
    if test_support::is_root() {
        users.push(User::Root);
        match userns_forbidden(User::Nobody) {
            None => users.push(User::Nobody),
            Some(reason) => test_support::unmet(reason),
        }
    }
    users
}

impl Env {
    /// A fresh directory and store with busybox in it; `None` (after reporting) without a static busybox.
    pub fn new(user: User) -> Option<Env> {
        let Some(busybox) = static_busybox() else {
            test_support::unmet("a static /bin/busybox (Debian package busybox-static)");
            return None;
        };
        let tmp = tempfile::Builder::new().prefix("fhskit-build-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let fhskit = tmp.path().join("fhskit");
        // A copy the unprivileged user can run (the build tree may be under a private home).
        let st = Command::new("cp").arg(env!("CARGO_BIN_EXE_fhskit")).arg(&fhskit).status().unwrap();
        assert!(st.success());
        let bb = tmp.path().join("bb");
        std::fs::create_dir_all(bb.join("bin")).unwrap();
        std::fs::copy(&busybox, bb.join("bin/busybox")).unwrap();
        symlink("busybox", bb.join("bin/sh")).unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir(&work).unwrap();
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut env = Env { tmp, user, fhskit, busybox: String::new() };
        env.busybox = env.ok(&["store", "add", "--name", "busybox", bb.to_str().unwrap()]).trim().to_owned();
        Some(env)
    }

    pub fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    /// The store's base directory.
    pub fn store_base(&self) -> PathBuf {
        self.work().join("store")
    }

    /// The store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.store_base().join("store")
    }

    /// `fhskit` as the test's user, in the work directory, with the test's store and configuration.
    pub fn command(&self) -> Command {
        let mut cmd = match self.user {
            User::Root => Command::new(&self.fhskit),
            User::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&self.fhskit);
                c
            }
        };
        cmd.current_dir(self.work())
            .env("FHSKIT_STORE", self.store_base())
            .env("HOME", self.work())
            .env("XDG_CONFIG_HOME", self.work().join("config"))
            .env_remove("NIX_CONFIG")
            .env_remove("NIX_PATH")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "fhskit {args:?} failed:\n{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit status `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "fhskit {args:?}:\n{}", text(&out));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    /// Writes `work/NAME.nix`: `body` after a prelude binding `bb` (busybox), `sh` and `mk NAME SCRIPT` (a
    /// derivation running SCRIPT with busybox's sh; extra attributes with `mkWith ATTRS NAME SCRIPT`).
    pub fn nix(&self, name: &str, body: &str) -> PathBuf {
        let text = format!(
            r#"let
  bb = builtins.storePath "{}";
  sh = "${{bb}}/bin/sh";
  mkWith = attrs: name: script: derivation ({{
    inherit name;
    system = builtins.currentSystem;
    builder = sh;
    args = [ "-c" script ];
  }} // attrs);
  mk = mkWith {{ }};
in
{body}
"#,
            self.busybox
        );
        let path = self.work().join(format!("{name}.nix"));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// The physical path of a logical store path printed by fhskit.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(path.trim()).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub use test_support::http::Server;

/// An HTTP server on 127.0.0.1 serving fixed files (path → contents), 404 for anything else; it counts requests
/// per path (`Server::hits`).
pub fn serve_files(files: HashMap<String, Vec<u8>>) -> Server {
    Server::start(move |req| match files.get(&req.path) {
        Some(body) => test_support::http::Response::ok(body.clone()),
        None => test_support::http::Response::not_found(),
    })
}

/// sha256 of `data` in nix32, as `nix-hash --type sha256 --flat --base32` prints it.
pub fn sha256_nix32(dir: &Path, data: &[u8]) -> String {
    let f = dir.join("hash-input");
    std::fs::write(&f, data).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fhskit"))
        .args(["store", "hash", "--type", "sha256", "--flat", "--base32"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
