//! Shared harness of the `pkgs` end-to-end tests: a fixture repository served on 127.0.0.1 and a sandboxed
//! `fhskit` (its own cache, config, host root and store under a temporary directory).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../../tests/fixtures/pkgs-repo.rs"]
pub mod repo;

pub use repo::*;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A served repository plus a sandbox to run `fhskit` in.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub server: Server,
    pub key: TestKey,
    pub debs: Vec<Deb>,
    pub pool: PoolIndex,
    pub opts: RepoOptions,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with(ed25519_key(1), RepoOptions::default())
    }

    pub fn with(key: TestKey, opts: RepoOptions) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let build = tmp.path().join("build");
        std::fs::create_dir_all(&build).unwrap();
        let debs = standard_debs(&fixtures(), &build);
        let served = tmp.path().join("www");
        let pool = write_repo(&served.join("debian"), &debs, &key, &opts);
        std::fs::write(tmp.path().join("key.gpg"), &key.public_gpg).unwrap();
        std::fs::write(tmp.path().join("key.asc"), &key.public_asc).unwrap();
        for d in ["cache", "config", "home", "hostroot", "work"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let server = Server::start(&served);
        Fixture { tmp, server, key, debs, pool, opts }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn url(&self) -> String {
        format!("{}/debian", self.server.url())
    }

    /// `--repo` value for this repository signed by `keyring`.
    pub fn spec_with(&self, keyring: &Path) -> String {
        format!("[signed-by={} arch=amd64,i386] {} {} main", keyring.display(), self.url(), self.opts.suite)
    }

    pub fn spec(&self) -> String {
        self.spec_with(&self.path("key.gpg"))
    }

    /// Rewrites the repository (e.g. after changing options) with the same key.
    pub fn rewrite(&mut self, opts: RepoOptions) {
        self.pool = write_repo(&self.path("www/debian"), &self.debs, &self.key, &opts);
        self.opts = opts;
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fhskit"));
        c.current_dir(self.path("work"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("HOME", self.path("home"))
            .env("FHSKIT_HOST_ROOT", self.path("hostroot"))
            .env("FHSKIT_STORE", self.path("store"))
            .env_remove("RUST_LOG")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY");
        c
    }

    /// Runs `fhskit ARGS` (with `--repo` for this repository when `with_repo`).
    pub fn run(&self, args: &[&str]) -> Output {
        let spec = self.spec();
        let mut c = self.command();
        c.args(args).arg("--repo").arg(spec);
        c.output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "fhskit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "fhskit {args:?} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    /// The URL path of a file below dists/<suite>/.
    pub fn dist_path(&self, rel: &str) -> String {
        format!("/debian/dists/{}/{rel}", self.opts.suite)
    }

    pub fn deb_path(&self, key: &str) -> String {
        format!("/debian/{}", self.pool[key].0)
    }

    /// Every file under the cache with its content hash, to prove a failed command changed nothing.
    pub fn cache_snapshot(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        snapshot(&self.path("cache"), &self.path("cache"), &mut out);
        out.sort();
        out.retain(|(p, _)| !p.ends_with("/lock") && p != "fhskit/lock");
        out
    }
}

fn snapshot(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if p.is_dir() && !p.is_symlink() {
            out.push((rel, "dir".into()));
            snapshot(root, &p, out);
        } else {
            out.push((rel, sha256_hex(&std::fs::read(&p).unwrap_or_default())));
        }
    }
}
