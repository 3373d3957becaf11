//! The builder against Nix 2.8 (Debian's nix-bin) on Nix-style chroot stores (`local?root=DIR`), as root:
//! - a derivation fhskit instantiated builds in Nix (no `map::at`: fhskit recorded its `DerivationOutputs`), and
//!   fhskit builds it to the same output paths, references and NAR hashes
//! - a derivation Nix instantiated builds in fhskit
//! - `nix-store --verify --check-contents` and `nix-store -r --check` accept what fhskit built; `nix-store -l`
//!   reads fhskit's build log
//! - fhskit reads what Nix built (outputs, deriver, nothing rebuilt)

mod build_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use build_support::{static_busybox, text};

const EXPR: &str = r#"
let
  bb = builtins.storePath "BUSYBOX";
  mk = name: script: attrs: derivation ({ inherit name; system = builtins.currentSystem; builder = "${bb}/bin/sh"; args = [ "-c" script ]; } // attrs);
  a = mk "interop-a" "mkdir -p $out/bin $dev; echo hello > $out/f; ln -s f $out/l; echo $dev > $out/bin/dev; chmod +x $out/bin/dev; echo d > $dev/h" { outputs = [ "out" "dev" ]; };
  b = mk "interop-b" "echo ${a}/f ${a.dev} > $out" { };
in b
"#;

struct Roots {
    tmp: tempfile::TempDir,
    bbdir: PathBuf,
}

impl Roots {
    fn new() -> Option<Roots> {
        if !test_support::have_tool("nix-store") {
            test_support::unmet("nix-store (Debian package nix-bin)");
            return None;
        }
        if !test_support::is_root() {
            test_support::unmet("root (Nix 2.8 builds into chroot stores as root here)");
            return None;
        }
        let Some(busybox) = static_busybox() else {
            test_support::unmet("a static /bin/busybox (Debian package busybox-static)");
            return None;
        };
        let tmp = tempfile::Builder::new().prefix("fhskit-interop-").tempdir_in("/tmp").unwrap();
        // Named `busybox` so `fhskit store add` and `nix-store --add` give the same path.
        let bbdir = tmp.path().join("src/busybox");
        std::fs::create_dir_all(bbdir.join("bin")).unwrap();
        std::fs::copy(&busybox, bbdir.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", bbdir.join("bin/sh")).unwrap();
        Some(Roots { tmp, bbdir })
    }

    fn root(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn store(&self, name: &str) -> String {
        format!("local?root={}", self.root(name).display())
    }

    fn fhskit(&self, root: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_fhskit"))
            .args(args)
            .env("FHSKIT_STORE", self.store(root))
            .env("XDG_CONFIG_HOME", self.tmp.path().join("config"))
            .env_remove("NIX_CONFIG")
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
    }

    fn fhskit_ok(&self, root: &str, args: &[&str]) -> String {
        let out = self.fhskit(root, args);
        assert!(out.status.success(), "fhskit {args:?}:\n{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// A Nix 2.8 command on the chroot store `root`, offline and without build users.
    fn nix(&self, tool: &str, root: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .arg("--store")
            .arg(self.store(root))
            .args(args)
            .args(["--option", "substituters", "", "--option", "build-users-group", ""])
            .env("NIX_CONFIG", "experimental-features = nix-command")
            .env("HOME", self.tmp.path())
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
    }

    fn nix_ok(&self, tool: &str, root: &str, args: &[&str]) -> String {
        let out = self.nix(tool, root, args);
        assert!(out.status.success(), "{tool} {args:?}:\n{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes the expression for the busybox path and returns its file.
    fn expr(&self, busybox: &str) -> PathBuf {
        let f = self.tmp.path().join(format!("b-{}.nix", busybox.len()));
        std::fs::write(&f, EXPR.replace("BUSYBOX", busybox)).unwrap();
        f
    }

    fn path_info(&self, root: &str, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.fhskit_ok(root, &["store", "path-info", "--json", path])).unwrap()
    }
}

fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn nix_and_fhskit_build_each_other_s_derivations_alike() {
    let Some(r) = Roots::new() else { return };
    let bb_dir = r.bbdir.to_str().unwrap();
    // fhskit instantiates; Nix builds.
    let bb = r.fhskit_ok("one", &["store", "add", bb_dir]).trim().to_owned();
    assert!(bb.ends_with("-busybox"));
    let f = r.expr(&bb);
    let drv = r.fhskit_ok("one", &["instantiate", f.to_str().unwrap()]).trim().to_owned();
    let by_nix = r.nix_ok("nix-store", "one", &["-r", &drv]);
    let out_b = by_nix.trim();
    assert!(out_b.ends_with("-interop-b"), "{by_nix}");
    // fhskit reads what Nix built: nothing is rebuilt, the deriver and outputs are Nix's.
    let again = r.fhskit("one", &["build", f.to_str().unwrap(), "--no-out-link"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), out_b);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("building"), "{}", text(&again));
    assert_eq!(r.path_info("one", out_b)[0]["deriver"].as_str().unwrap(), drv);
    let a_drv = r.nix_ok("nix-store", "one", &["-q", "--references", &drv]);
    let a_drv = a_drv.lines().find(|l| l.ends_with("-interop-a.drv")).unwrap().to_owned();
    let nix_outputs = r.nix_ok("nix-store", "one", &["-q", "--outputs", &a_drv]);
    assert_eq!(lines(&r.fhskit_ok("one", &["store", "query", "--outputs", &a_drv])), lines(&nix_outputs));

    // fhskit builds the same derivation in another store: same paths, references and NAR hashes.
    r.fhskit_ok("two", &["store", "add", bb_dir]);
    let ours = r.fhskit_ok("two", &["build", f.to_str().unwrap(), "--no-out-link"]);
    assert_eq!(ours.trim(), out_b);
    let closure = lines(&r.fhskit_ok("two", &["store", "closure", out_b]));
    assert_eq!(closure, lines(&r.nix_ok("nix-store", "one", &["-q", "-R", out_b])));
    for p in &closure {
        let theirs = r.nix_ok("nix-store", "one", &["-q", "--hash", p]);
        let mine = r.nix_ok("nix-store", "two", &["-q", "--hash", p]);
        assert_eq!(mine, theirs, "NAR hash of {p}");
        let refs_theirs = lines(&r.nix_ok("nix-store", "one", &["-q", "--references", p]));
        let refs_mine = lines(&r.nix_ok("nix-store", "two", &["-q", "--references", p]));
        assert_eq!(refs_mine, refs_theirs, "references of {p}");
    }
    // Nix accepts what fhskit built: contents, hashes, a rebuild with --check, and the log.
    r.nix_ok("nix-store", "two", &["--verify", "--check-contents"]);
    let check = r.nix("nix-store", "two", &["-r", "--check", &drv]);
    assert!(check.status.success(), "{}", text(&check));
    let log = r.nix("nix-store", "two", &["-l", &drv]);
    assert!(log.status.success(), "{}", text(&log));

    // Nix instantiates; fhskit builds.
    let bb3 = r.nix_ok("nix-store", "three", &["--add", bb_dir]);
    assert_eq!(bb3.trim(), bb);
    let drv3 = r.nix_ok("nix-instantiate", "three", &[f.to_str().unwrap()]);
    assert_eq!(drv3.trim(), drv, "the same .drv from both evaluators");
    let built = r.fhskit_ok("three", &["store", "realise", drv3.trim()]);
    assert_eq!(built.trim(), out_b);
    assert_eq!(
        r.nix_ok("nix-store", "three", &["-q", "--hash", out_b]),
        r.nix_ok("nix-store", "one", &["-q", "--hash", out_b])
    );
    r.nix_ok("nix-store", "three", &["--verify", "--check-contents"]);
    assert!(Path::new(&r.root("three")).join(out_b.trim_start_matches('/')).exists());
}
