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
    fhskit_in(tmp, tmp, args, stdin)
}

/// Runs `fhskit` with the chroot store under `tmp`, in the working directory `cwd`.
fn fhskit_in(tmp: &Path, cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhskit"));
    cmd.args(args)
        .env("FHSKIT_STORE", format!("local?root={}", tmp.join("root").display()))
        .env("TZ", "UTC")
        .current_dir(cwd)
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
    // Restore Nix's NAR of `edge`: its absolute dangling symlink is accepted, as Nix accepts it.
    let nar = fs::read(golden().join("nar/edge.nar")).unwrap();
    let out = fhskit(tmp.path(), &["store", "restore", "out"], Some(&nar));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::read_link(tmp.path().join("out/dangling")).unwrap(), Path::new("/nonexistent/target"));
    let again = fhskit(tmp.path(), &["store", "dump", "out"], None);
    assert!(again.stdout == nar);
    let err = fails(tmp.path(), &["store", "restore", "bad"], Some(b"not a nar at all"));
    assert!(err.contains("malformed NAR"), "{err}");
    assert!(!tmp.path().join("bad").exists(), "a refused restore leaves nothing behind");
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
    assert!(err.ends_with("\nhint: `fhskit store roots` shows what keeps paths alive\n"), "{err}");
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

/// A stream that ends in the middle of its last entry, or whose path refers to one neither valid nor in the stream,
/// imports nothing, not even its complete first entries; symlinks leaving the store import as with Nix.
#[test]
fn import_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    let d = ok(tmp.path(), &["store", "add", input.join("d").to_str().unwrap()]);
    let d = d.trim();
    let edge = ok(tmp.path(), &["store", "add", input.join("edge").to_str().unwrap()]);
    let edge = edge.trim();
    let pkg = tmp.path().join("pkg");
    fs::create_dir(&pkg).unwrap();
    fs::write(pkg.join("conf"), format!("data={d}/a.txt\n")).unwrap();
    let p = ok(tmp.path(), &["store", "add", "--reference", d, pkg.to_str().unwrap()]);
    let p = p.trim();
    let exported = fhskit(tmp.path(), &["store", "export", edge, d, p], None).stdout;
    let alone = fhskit(tmp.path(), &["store", "export", p], None).stdout;
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    let cut = fails(&other, &["store", "import"], Some(&exported[..exported.len() - 20]));
    assert!(cut.contains("nothing was imported"), "{cut}");
    let missing = fails(&other, &["store", "import"], Some(&alone));
    assert!(missing.contains("nothing was imported") && missing.contains(d), "{missing}");
    for path in [edge, d, p] {
        assert!(fails(&other, &["store", "path-info", path], None).contains("is not valid"));
    }
    let store_dir = other.join("root/nix/store");
    let left: Vec<_> = fs::read_dir(&store_dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "a failed import leaves nothing in the store directory: {left:?}");
    // The whole stream lands, edge's link to /nonexistent/target included.
    assert!(fails(&other, &["store", "import"], Some(b"")).contains("malformed export stream"));
    let out = fhskit(&other, &["store", "import"], Some(&exported));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{edge}\n{d}\n{p}\n"));
    let link = store_dir.join(edge.trim_start_matches("/nix/store/")).join("dangling");
    assert_eq!(fs::read_link(link).unwrap(), Path::new("/nonexistent/target"));
    assert_eq!(ok(&other, &["store", "verify"]), "checked 3 paths, 0 problems\n");
}

/// `store closure` and the other queries follow a profile's chain of links from any directory, and paths inside
/// store objects; `store add --add-root` roots the path before the command ends.
#[test]
fn profile_links_and_add_root() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    let d = ok(tmp.path(), &["store", "add", "--add-root", "d-root", input.join("d").to_str().unwrap()]);
    let d = d.trim();
    assert_eq!(fs::read_link(tmp.path().join("d-root")).unwrap(), Path::new(d));
    assert!(ok(tmp.path(), &["store", "roots"]).contains(&format!("d-root -> {d}")));
    assert!(!ok(tmp.path(), &["store", "gc", "--print-dead"]).contains(d), "the root keeps d alive");
    let two = ok(
        tmp.path(),
        &["store", "add", "--add-root", "r", input.join("hello.txt").to_str().unwrap(), pkg_of(tmp.path())],
    );
    assert_eq!(two.lines().count(), 2, "{two}");
    assert!(tmp.path().join("r").is_symlink() && tmp.path().join("r-2").is_symlink());
    // A profile in a directory of its own: profiles/default -> default-1-link -> the user environment.
    let profiles = tmp.path().join("profiles");
    fs::create_dir(&profiles).unwrap();
    ok(tmp.path(), &["profile", "--profile", "profiles/default", "install", d]);
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let prof = profiles.join("default");
    let in_elsewhere = |args: &[&str]| {
        let out = fhskit_in(tmp.path(), &elsewhere, args, None);
        assert!(out.status.success(), "fhskit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let closure = in_elsewhere(&["store", "closure", prof.to_str().unwrap()]);
    assert!(closure.contains(d) && closure.contains("user-environment"), "{closure}");
    // Through a relative chain of two more links, and to a file inside the environment.
    std::os::unix::fs::symlink("../profiles/default", elsewhere.join("my-profile")).unwrap();
    std::os::unix::fs::symlink("my-profile", elsewhere.join("again")).unwrap();
    assert_eq!(in_elsewhere(&["store", "closure", "again"]), closure);
    assert_eq!(ok(tmp.path(), &["store", "closure", "elsewhere/again/a.txt"]), closure);
    let err = fails(tmp.path(), &["store", "closure", input.join("d").to_str().unwrap()], None);
    assert!(err.contains("is not a path in the store"), "{err}");
    std::os::unix::fs::symlink("loop", tmp.path().join("loop")).unwrap();
    let err = fails(tmp.path(), &["store", "closure", "loop"], None);
    assert!(err.contains("too many levels of symbolic links"), "{err}");
}

fn pkg_of(tmp: &Path) -> &'static str {
    let pkg = tmp.join("pkg2");
    fs::create_dir(&pkg).unwrap();
    fs::write(pkg.join("f"), "x\n").unwrap();
    Box::leak(pkg.to_string_lossy().into_owned().into_boxed_str())
}

/// What killed processes leave in the store directory: their temporary copies are removed by the next write and by
/// `store verify`, and entries at store paths that are not registered are reported.
#[test]
fn verify_cleans_temporaries_and_reports_unregistered() {
    let tmp = tempfile::tempdir().unwrap();
    let input = inputs(tmp.path());
    let d = ok(tmp.path(), &["store", "add", input.join("d").to_str().unwrap()]);
    let store_dir = tmp.path().join("root/nix/store");
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let leftover = |n: u32| {
        let dir = store_dir.join(format!(".tmp-{dead}-{n}-1"));
        fs::create_dir_all(dir.join("x/sub")).unwrap();
        fs::write(dir.join("x/sub/big"), vec![7u8; 1 << 16]).unwrap();
        dir
    };
    let mine = store_dir.join(format!(".tmp-{}-0-1", std::process::id()));
    fs::create_dir(&mine).unwrap();
    let first = leftover(0);
    ok(tmp.path(), &["store", "add", input.join("hello.txt").to_str().unwrap()]);
    assert!(!first.exists(), "the next write removes a killed add's copy");
    let second = leftover(1);
    let unregistered = store_dir.join(format!("{}-leftover", &d.trim()["/nix/store/".len()..][..32]));
    fs::create_dir(&unregistered).unwrap();
    let out = fhskit(tmp.path(), &["store", "verify"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!second.exists() && mine.exists(), "only dead processes' entries go");
    assert!(err.contains(&format!("removed {}", second.display())), "{err}");
    assert!(err.contains(&format!("warning: {} is not a registered path", unregistered.display())), "{err}");
    let json = ok(tmp.path(), &["store", "verify", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["unregistered"], serde_json::json!([unregistered.to_str().unwrap()]));
    assert_eq!(v["removedTemporaries"], serde_json::json!([]));
    ok(tmp.path(), &["store", "gc"]);
    assert!(!unregistered.exists());
}
