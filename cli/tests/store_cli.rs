//! End to end: the `fhskit store` and `fhskit profile` commands, run as a user would, on chroot stores under
//! temporary directories; outputs are compared with the golden vectors real Nix produced
//! (`tests/fixtures/store-golden/`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/store-golden")
}

fn inputs(tmp: &Path) -> PathBuf {
    let dir = tmp.join("in");
    assert!(Command::new("sh").arg(golden().join("make-tree.sh")).arg(&dir).status().unwrap().success());
    dir
}

/// Runs `fhskit` with a Nix-style chroot store under `tmp` and UTC time.
fn fhskit(tmp: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhskit"));
    cmd.args(args)
        .env("FHSKIT_STORE", format!("local?root={}", tmp.join("root").display()))
        .env("TZ", "UTC")
        .current_dir(tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        pipe.write_all(data).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn ok(tmp: &Path, args: &[&str]) -> String {
    let out = fhskit(tmp, args, None);
    assert!(out.status.success(), "fhskit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn fails(tmp: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = fhskit(tmp, args, stdin);
    assert!(!out.status.success(), "fhskit {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn hash_dump_restore_match_nix() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    for line in fs::read_to_string(golden().join("hashes.txt")).unwrap().lines() {
        let (args, expected) = line.split_once('\t').unwrap();
        let mut argv = vec!["store", "hash"];
        argv.extend(args.split(' '));
        let last = argv.pop().unwrap();
        let path = input.join(last);
        argv.push(path.to_str().unwrap());
        assert_eq!(ok(tmp.path(), &argv), format!("{expected}\n"), "nix-hash {args}");
    }
    let sri =
        ok(tmp.path(), &["store", "hash", "--type", "sha256", "--sri", input.join("d").to_str().unwrap()]);
    assert_eq!(sri, "sha256-q55gDFo9T4Z4MHX5yhZGflHWmieAyLjbdqId5Ilg1Pw=\n");
    for t in ["d", "edge", "hello.txt", "toplink"] {
        let out = fhskit(tmp.path(), &["store", "dump", input.join(t).to_str().unwrap()], None);
        assert!(out.status.success());
        assert!(out.stdout == fs::read(golden().join(format!("nar/{t}.nar"))).unwrap(), "dump of {t}");
    }
    // Restore Nix's NAR of `edge` (it has an absolute dangling symlink: refused unless allowed).
    let nar = fs::read(golden().join("nar/edge.nar")).unwrap();
    let err = fails(tmp.path(), &["store", "restore", "out"], Some(&nar));
    assert!(err.contains("points outside"), "{err}");
    assert!(!tmp.path().join("out").exists(), "a refused restore leaves nothing behind");
    let out = fhskit(tmp.path(), &["store", "restore", "--allow-escaping-symlinks", "out"], Some(&nar));
    assert!(out.status.success());
    let again = fhskit(tmp.path(), &["store", "dump", "out"], None);
    assert!(again.stdout == nar);
    let err = fails(tmp.path(), &["store", "restore", "bad"], Some(b"not a nar at all"));
    assert!(err.contains("malformed NAR"), "{err}");
    let err = fails(tmp.path(), &["store", "hash", "--type", "sha3", "x"], None);
    assert!(err.contains("unknown hash algorithm 'sha3'"), "{err}");
}

#[test]
fn add_query_export_import() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    for line in fs::read_to_string(golden().join("paths.txt")).unwrap().lines() {
        let (args, expected) = line.split_once('\t').unwrap();
        let mut argv: Vec<String> = vec!["store".into()];
        let mut words: Vec<&str> = args.split(' ').collect();
        let file = words.pop().unwrap();
        argv.extend(words.iter().map(|w| w.trim_start_matches("--").replace("recursive", "--recursive")));
        argv.push(input.join(file).to_string_lossy().into_owned());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        assert_eq!(ok(tmp.path(), &argv), format!("{expected}\n"), "nix-store {args}");
    }
    let d = "/nix/store/46h99v2kjhaignz5dm0y8kzhwanpiirv-d";
    let info = ok(tmp.path(), &["store", "path-info", "--json", d]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v[0]["narHash"], "sha256-q55gDFo9T4Z4MHX5yhZGflHWmieAyLjbdqId5Ilg1Pw=");
    assert_eq!(v[0]["narSize"], 888);
    assert_eq!(v[0]["ca"], "fixed:r:sha256:1z6lc24y87d2fvdvij404yddclby8qbcmybm61w8ckrxb86617mb");
    assert!(
        ok(tmp.path(), &["store", "path-info", d])
            .contains("nar-hash: sha256:1z6lc24y87d2fvdvij404yddclby8qbcmybm61w8ckrxb86617mb")
    );
    // A tree referring to d, found by scanning.
    let pkg = tmp.path().join("pkg");
    fs::create_dir(&pkg).unwrap();
    fs::write(pkg.join("conf"), format!("data={d}/a.txt\n")).unwrap();
    let p = ok(tmp.path(), &["store", "add", "--scan-references", pkg.to_str().unwrap()]);
    let p = p.trim();
    assert_eq!(ok(tmp.path(), &["store", "closure", p]), format!("{d}\n{p}\n"));
    assert_eq!(ok(tmp.path(), &["store", "referrers", d]), format!("{p}\n"));
    assert_eq!(
        ok(tmp.path(), &["store", "referrers", "--closure", "--json", d]),
        format!("[\"{p}\",\"{d}\"]\n")
    );
    let hash = &p["/nix/store/".len().."/nix/store/".len() + 6];
    assert_eq!(ok(tmp.path(), &["store", "find", hash]), format!("{p}\n"));
    assert!(fails(tmp.path(), &["store", "find", "zzzzzz"], None).contains("no valid store path"));
    // Export the closure, import it into another store; Nix's own export imports too.
    let exported = fhskit(tmp.path(), &["store", "export", "--closure", p], None).stdout;
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    let imported = fhskit(&other, &["store", "import"], Some(&exported));
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    assert_eq!(String::from_utf8(imported.stdout).unwrap(), format!("{d}\n{p}\n"));
    let nix_export = fs::read(golden().join("export.bin")).unwrap();
    let imported = fhskit(&other, &["store", "import"], Some(&nix_export));
    assert_eq!(
        String::from_utf8(imported.stdout).unwrap(),
        fs::read_to_string(golden().join("closure.txt")).unwrap()
    );
    // A truncated stream is an error and registers nothing new.
    let third = tmp.path().join("third");
    fs::create_dir(&third).unwrap();
    let err = fails(&third, &["store", "import"], Some(&exported[..exported.len() / 2]));
    assert!(err.contains("cannot import"), "{err}");
    assert!(fails(&third, &["store", "path-info", d], None).contains("is not valid"));
    assert!(
        fails(tmp.path(), &["store", "add", "--name", "bad name", pkg.to_str().unwrap()], None)
            .contains("invalid")
    );
}

#[test]
fn gc_delete_verify_optimise() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    let d = ok(tmp.path(), &["store", "add", input.join("d").to_str().unwrap()]);
    let d = d.trim();
    let h = ok(tmp.path(), &["store", "add", input.join("hello.txt").to_str().unwrap()]);
    let h = h.trim();
    let e = ok(tmp.path(), &["store", "add", input.join("edge").to_str().unwrap()]);
    let e = e.trim();
    // An indirect root through a profile generation keeps d alive.
    ok(tmp.path(), &["profile", "--profile", "prof", "install", d]);
    let roots = ok(tmp.path(), &["store", "roots"]);
    assert!(roots.contains("prof-1-link -> /nix/store/"), "{roots}");
    let dead = ok(tmp.path(), &["store", "gc", "--print-dead"]);
    assert_eq!(dead.lines().collect::<Vec<_>>(), {
        let mut v = vec![h, e];
        v.sort();
        v
    });
    let live = ok(tmp.path(), &["store", "gc", "--print-live"]);
    assert!(live.contains(d) && !live.contains(h));
    let err = fails(tmp.path(), &["store", "delete", d], None);
    assert!(err.contains("since it is still alive"), "{err}");
    assert_eq!(ok(tmp.path(), &["store", "delete", h]), "1 store paths deleted, 0.00 MiB freed\n");
    let out = ok(tmp.path(), &["store", "gc", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deleted"], serde_json::json!([e]));
    assert!(v["bytesFreed"].as_u64().unwrap() > 0);
    // d and the profile's user environment remain.
    assert_eq!(ok(tmp.path(), &["store", "verify"]), "checked 2 paths, 0 problems\n");
    // Tamper with d: verify reports it and fails; repair from Nix's NAR fixes it.
    let phys = tmp.path().join("root").join(d.trim_start_matches('/')).join("a.txt");
    let mut perms = fs::metadata(&phys).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs::set_permissions(&phys, perms).unwrap();
    fs::write(&phys, "changed\n").unwrap();
    let out = fhskit(tmp.path(), &["store", "verify"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was modified"));
    let nar = golden().join("nar/d.nar");
    ok(tmp.path(), &["store", "verify", "--repair-from", nar.to_str().unwrap(), d]);
    assert_eq!(ok(tmp.path(), &["store", "verify", d]), "checked 1 paths, 0 problems\n");
    let out = ok(tmp.path(), &["store", "optimise", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["filesLinked"].is_u64(), "{out}");
}

#[test]
fn profile_generations_match_nix() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    let d = ok(tmp.path(), &["store", "add", input.join("d").to_str().unwrap()]);
    let d = d.trim();
    let prof = ["profile", "--profile", "p"];
    let with = |extra: &[&str]| -> Vec<String> { prof.iter().chain(extra).map(|s| s.to_string()).collect() };
    let run = |extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(tmp.path(), &args)
    };
    assert_eq!(run(&["list-generations"]), "");
    run(&["install", d]);
    run(&["install", input.join("hello.txt").to_str().unwrap()]);
    run(&["remove", "hello.txt"]);
    let listing = run(&["list-generations"]);
    assert_eq!(listing.lines().count(), 3, "{listing}");
    assert!(listing.ends_with("   (current)\n"));
    // The user environment links into the package.
    let env = fs::read_link(tmp.path().join("p-3-link")).unwrap();
    let env_phys = tmp.path().join("root").join(env.strip_prefix("/").unwrap());
    assert_eq!(fs::read_link(env_phys.join("a.txt")).unwrap(), Path::new(d).join("a.txt"));
    // Fix the link times as regenerate.sh did and compare with nix-env's listing.
    for (n, t) in [(1, "@1700000000"), (2, "@1700003600"), (3, "@1700086400")] {
        let link = tmp.path().join(format!("p-{n}-link"));
        assert!(Command::new("touch").args(["-h", "-d", t]).arg(&link).status().unwrap().success());
    }
    assert_eq!(run(&["list-generations"]), fs::read_to_string(golden().join("generations.txt")).unwrap());
    let out = fhskit(
        tmp.path(),
        &with(&["switch-generation", "1"]).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        fs::read_to_string(golden().join("switch.txt")).unwrap()
    );
    assert_eq!(
        run(&["list-generations"]),
        fs::read_to_string(golden().join("generations-after-switch.txt")).unwrap()
    );
    let err = fails(
        tmp.path(),
        &with(&["switch-generation", "9"]).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert!(err.contains("profile version 9 does not exist"), "{err}");
    let err = fails(tmp.path(), &with(&["rollback"]).iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(err.contains("no generation older than the current (1)"), "{err}");
    run(&["switch-generation", "3"]);
    let out = fhskit(tmp.path(), &with(&["rollback"]).iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "switching profile from version 3 to 2\n");
    let out = fhskit(
        tmp.path(),
        &with(&["delete-generations", "old"]).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "removing profile version 1\nremoving profile version 3\n"
    );
    assert_eq!(run(&["list-generations"]).lines().count(), 1);
    // With the generations gone their environments die; the current one lives.
    let dead = ok(tmp.path(), &["store", "gc", "--print-dead"]);
    assert!(dead.contains("user-environment"), "{dead}");
    assert!(!dead.contains(d));
}
