//! End to end: `fhskit eval` and `fhskit instantiate` as a user runs them, on a Nix-style chroot store under a
//! temporary directory. Outputs, `.drv` files and `toFile` results are compared with what real Nix printed and
//! wrote for the same fixtures (`tests/fixtures/eval-golden/`, made by its `regenerate.sh`); fetches are served
//! from files and from an HTTP server on 127.0.0.1; errors must be one clear message and a failed exit, never a
//! crash.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::http::{Response, Server};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/eval-golden").canonicalize().unwrap()
}

/// Runs `fhskit` in the fixture directory with the store `tmp/root` (logical `/nix/store`) and no NIX_PATH.
fn fhskit(tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fhskit"))
        .args(args)
        .env("FHSKIT_STORE", format!("local?root={}", tmp.join("root").display()))
        .env("NIX_PATH", "")
        .current_dir(golden())
        .output()
        .unwrap()
}

fn ok(tmp: &Path, args: &[&str]) -> String {
    let out = fhskit(tmp, args);
    assert!(out.status.success(), "fhskit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with exit code 1 and an `error:` message (no panic, no signal).
fn fails(tmp: &Path, args: &[&str]) -> String {
    let out = fhskit(tmp, args);
    assert_eq!(out.status.code(), Some(1), "fhskit {args:?}: {out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn physical(tmp: &Path, store_path: &str) -> PathBuf {
    tmp.join("root").join(store_path.trim_start_matches('/'))
}

#[test]
fn outputs_and_derivations_match_nix() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = fs::read_to_string(golden().join("cases.txt")).unwrap();
    for line in cases.lines() {
        let (name, args) = line.split_once('\t').unwrap();
        let mut argv: Vec<&str> = args.split(' ').collect();
        if argv[0] == "--eval" {
            argv[0] = "eval";
        } else {
            argv.insert(0, "instantiate");
        }
        let expected = fs::read_to_string(golden().join("expected").join(format!("{name}.out"))).unwrap();
        // Nix 2.8 ends JSON output without a newline; current Nix and fhskit end it with one.
        assert_eq!(ok(tmp.path(), &argv).trim_end(), expected.trim_end(), "case {name}: fhskit {argv:?}");
    }
    // Every file Nix added (.drv files, toFile results, the source) is in our store, byte for byte.
    let mut compared = 0;
    for entry in fs::read_dir(golden().join("store")).unwrap() {
        let entry = entry.unwrap();
        let ours = physical(tmp.path(), &format!("/nix/store/{}", entry.file_name().to_string_lossy()));
        let ours = fs::read(&ours).unwrap_or_else(|e| panic!("{}: {e}", ours.display()));
        assert_eq!(ours, fs::read(entry.path()).unwrap(), "{}", entry.path().display());
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} golden store files");
    // Registered with their references, so the store keeps a derivation's inputs alive.
    let with_deps = fs::read_to_string(golden().join("expected/instantiate.out")).unwrap();
    let with_deps = with_deps.lines().find(|l| l.ends_with("-with-deps.drv")).unwrap();
    let closure = ok(tmp.path(), &["store", "closure", with_deps]);
    for needed in
        ["-dep.drv", "-multi.drv", "-fixed-flat.drv", "-wrapper.sh", "-script.sh", "-source.txt", "-lib-copy"]
    {
        assert!(closure.lines().any(|l| l.ends_with(needed)), "{needed} not in the closure:\n{closure}");
    }
    let lib_copy = closure.lines().find(|l| l.ends_with("-lib-copy")).unwrap();
    assert!(physical(tmp.path(), lib_copy).join("two.nix").is_file());
    assert!(ok(tmp.path(), &["store", "verify"]).ends_with(", 0 problems\n"));

    // --add-root keeps the derivations (and through their references, their inputs) from a collection.
    let link = tmp.path().join("result");
    let printed =
        ok(tmp.path(), &["instantiate", "--add-root", link.to_str().unwrap(), "-A", "withDeps", "drvs.nix"]);
    assert_eq!(printed, format!("{}\n", link.display()));
    assert_eq!(fs::read_link(&link).unwrap().to_str().unwrap(), with_deps);
    ok(tmp.path(), &["store", "gc"]);
    assert!(physical(tmp.path(), with_deps).is_file());
    assert!(physical(tmp.path(), lib_copy).is_dir());
    let multi = fs::read_to_string(golden().join("expected/instantiate-attr.out")).unwrap();
    assert!(physical(tmp.path(), multi.trim()).exists(), "multi.drv is an input of with-deps");
    let structured = fs::read_to_string(golden().join("expected/instantiate.out")).unwrap();
    let structured = structured.lines().find(|l| l.ends_with("-structured.drv")).unwrap();
    assert!(!physical(tmp.path(), structured).exists(), "an unrooted .drv survived the collection");
}

#[test]
fn eval_is_read_only_and_store_dir_can_be_chosen() {
    let tmp = tempfile::tempdir().unwrap();
    let expr = r#"(derivation { name = "x"; system = "x86_64-linux"; builder = "/bin/sh"; }).drvPath"#;
    let out = ok(tmp.path(), &["eval", "-E", expr]);
    assert!(out.starts_with("\"/nix/store/") && out.ends_with("-x.drv\"\n"), "{out}");
    assert!(!tmp.path().join("root").exists(), "eval wrote to the store");
    let out = ok(tmp.path(), &["eval", "--store-dir", "/gnu/store", "-E", expr]);
    assert!(out.starts_with("\"/gnu/store/"), "{out}");
    // Adding to a store whose directory differs from the one paths are computed for is refused.
    let err = fails(
        tmp.path(),
        &[
            "eval",
            "--store-dir",
            "/gnu/store",
            "-E",
            &format!("builtins.fetchurl \"file://{}/source.txt\"", golden().display()),
        ],
    );
    assert!(err.contains("not in the store directory /nix/store"), "{err}");
}

#[test]
fn eval_reads_standard_input() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhskit"))
        .args(["eval", "--strict", "-"])
        .env("FHSKIT_STORE", format!("local?root={}", tmp.path().join("root").display()))
        .current_dir(golden())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Relative paths in standard input are relative to the working directory.
    let src =
        "let x = builtins.readFile ./source.txt; in { n = builtins.stringLength x; p = __curPos.line; }\n";
    child.stdin.take().unwrap().write_all(src.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let len = fs::read(golden().join("source.txt")).unwrap().len();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{{ n = {len}; p = 1; }}\n"));
}

/// Serves `body` to every HTTP request on 127.0.0.1.
fn serve(body: Vec<u8>) -> Server {
    Server::start(move |_| Response::ok(body.clone()))
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"\n")
}

#[test]
fn fetchurl_checks_hashes_and_prints_the_one_to_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = fs::read_to_string(golden().join("fetchurl.txt")).unwrap();
    let expected = expected.trim();
    let url = format!("file://{}/source.txt", golden().display());
    assert_eq!(ok(tmp.path(), &["eval", "-E", &format!("builtins.fetchurl \"{url}\"")]), quoted(expected));
    assert_eq!(
        fs::read(physical(tmp.path(), expected)).unwrap(),
        fs::read(golden().join("source.txt")).unwrap()
    );

    let fake = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let err = fails(
        tmp.path(),
        &["eval", "-E", &format!("builtins.fetchurl {{ url = \"{url}\"; hash = \"{fake}\"; }}")],
    );
    assert!(err.starts_with(&format!("error: hash mismatch in file downloaded from '{url}':")), "{err}");
    assert!(err.contains(&format!("specified: {fake}")), "{err}");
    let got =
        err.lines().find_map(|l| l.trim().strip_prefix("got:")).expect("a got: line").trim().to_string();
    assert!(got.starts_with("sha256-"), "{err}");

    // The hash copied from the message is the right one, over HTTP too.
    let server = serve(fs::read(golden().join("source.txt")).unwrap());
    let base = server.url("");
    let expr = format!("builtins.fetchurl {{ url = \"{base}/dir/source.txt\"; hash = \"{got}\"; }}");
    assert_eq!(ok(tmp.path(), &["eval", "-E", &expr]), quoted(expected));
    let err = fails(tmp.path(), &["eval", "-E", "builtins.fetchurl \"http://127.0.0.1:1/nothing\""]);
    assert!(err.contains("unable to download 'http://127.0.0.1:1/nothing'"), "{err}");
}

#[test]
fn fetch_tarball_unpacks_into_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src/pkg-1.0");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("hello.txt"), "hi\n").unwrap();
    let tarball = tmp.path().join("pkg.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path().join("src"))
        .arg("pkg-1.0")
        .status()
        .unwrap();
    assert!(status.success());
    let server = serve(fs::read(&tarball).unwrap());
    let base = server.url("");
    let fake = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let expr = format!("builtins.fetchTarball {{ url = \"{base}/pkg.tar.gz\"; sha256 = \"{fake}\"; }}");
    let err = fails(tmp.path(), &["eval", "-E", &expr]);
    assert!(err.contains("hash mismatch") && err.contains("got:"), "{err}");
    let got = err.lines().find_map(|l| l.trim().strip_prefix("got:")).unwrap().trim().to_string();
    let expr = format!("builtins.fetchTarball {{ url = \"{base}/pkg.tar.gz\"; sha256 = \"{got}\"; }}");
    let out = ok(tmp.path(), &["eval", "-E", &expr]);
    let path = out.trim().trim_matches('"');
    assert!(path.ends_with("-source"), "{out}");
    // The single top-level directory is the tree, as in Nix.
    assert_eq!(fs::read_to_string(physical(tmp.path(), path).join("hello.txt")).unwrap(), "hi\n");
}

#[test]
fn errors_are_reported_not_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let err = fails(t, &["eval", "-E", "let x = x; in x"]);
    assert!(err.starts_with("error: infinite recursion encountered"), "{err}");

    // Calls nest as deep as Nix's max-call-depth (10,000 by default) allows; more is Nix's error, and a larger
    // setting allows more: 100,000 nested calls fit the evaluation stack of a release build (a debug build's
    // frames are larger, so there a clear error is as good as a result).
    let deep = "let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 100000";
    assert_eq!(ok(t, &["eval", "-E", &deep.replace("100000", "10000")]), "10000\n");
    let err = fails(t, &["eval", "-E", deep]);
    assert!(err.starts_with("error: stack overflow; max-call-depth exceeded"), "{err}");
    let out = fhskit(t, &["eval", "--max-call-depth", "200000", "-E", deep]);
    if out.status.success() || !cfg!(debug_assertions) {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "100000\n", "{out:?}");
    } else {
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: stack overflow"), "{out:?}");
    }
    let too_deep = "let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 100000000";
    let err = fails(t, &["eval", "--option", "max-call-depth", "1000000000", "-E", too_deep]);
    assert!(err.contains("max-call-depth"), "{err}");

    let err = fails(t, &["eval", "-E", "1 + x"]);
    assert!(err.starts_with("error: undefined variable 'x'"), "{err}");
    assert!(err.contains("«string»:1:5"), "{err}");

    let call = "let f = x: x.a; g = y: f y; in g 1";
    let err = fails(t, &["eval", "-E", call]);
    assert!(!err.contains("while calling"), "{err}");
    let err = fails(t, &["eval", "--show-trace", "-E", call]);
    assert!(err.contains("while calling 'g'") && err.contains("while calling 'f'"), "{err}");
    assert!(err.contains("expected a set but found an integer"), "{err}");

    let err = fails(t, &["eval", "-E", "{ a = 1; a = 2; }"]);
    assert!(err.contains("attribute 'a' already defined at «string»:1:3"), "{err}");

    let err = fails(t, &["eval", "/nonexistent/file.nix"]);
    assert!(err.contains("/nonexistent/file.nix"), "{err}");
    let bad = t.join("bad.nix");
    fs::write(&bad, "{ a = ; }").unwrap();
    let err = fails(t, &["eval", bad.to_str().unwrap()]);
    assert!(err.contains(&format!("{}:1:7", bad.display())), "{err}");

    let err = fails(t, &["instantiate", "-E", "builtins.throw \"no derivation here\""]);
    assert!(err.starts_with("error: no derivation here"), "{err}");
    assert!(!t.join("root").exists(), "a failed instantiate wrote to the store");
}

/// An HTTP server on 127.0.0.1 that answers every request with `body` and the ETag `"v1"`, or 304 Not Modified
/// to a request that already has it.
fn serve_with_etag(body: Vec<u8>) -> Server {
    Server::start(move |req| match req.header("if-none-match") {
        Some("\"v1\"") => Response::new(304, Vec::new()).header("ETag", "\"v1\""),
        _ => Response::ok(body.clone()).header("ETag", "\"v1\""),
    })
}

/// `fhskit` as `fhskit(…)` runs it, with NIX_PATH set.
fn fhskit_with_path(tmp: &Path, nix_path: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fhskit"))
        .args(args)
        .env("FHSKIT_STORE", format!("local?root={}", tmp.join("root").display()))
        .env("NIX_PATH", nix_path)
        .current_dir(golden())
        .output()
        .unwrap()
}

#[test]
fn search_path_urls_are_fetched_once_and_revalidated_after_the_ttl() {
    use std::sync::atomic::Ordering;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src/nixpkgs-1");
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("default.nix"), "{ v = import ./lib/x.nix; }\n").unwrap();
    fs::write(src.join("lib/x.nix"), "41 + 1\n").unwrap();
    let tarball = tmp.path().join("nixpkgs.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path().join("src"))
        .arg("nixpkgs-1")
        .status()
        .unwrap();
    assert!(status.success());
    let server = serve_with_etag(fs::read(&tarball).unwrap());
    let (base, count) = (server.url(""), server.request_counter());
    let t = tmp.path();
    let nix_path = format!("nixpkgs={base}/nixpkgs.tar.gz");
    let run = |args: &[&str]| {
        let o = fhskit_with_path(t, &nix_path, args);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    // Fetched into the store once…
    assert_eq!(run(&["eval", "-E", "(import <nixpkgs>).v"]), "42\n");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let found = run(&["instantiate", "--find-file", "nixpkgs/lib/x.nix"]);
    assert!(found.starts_with("/nix/store/") && found.ends_with("-source/lib/x.nix\n"), "{found}");
    assert_eq!(fs::read_to_string(physical(t, found.trim())).unwrap(), "41 + 1\n");
    // …reused while younger than tarball-ttl, without asking the server…
    assert_eq!(run(&["eval", "-E", "import <nixpkgs/lib/x.nix>"]), "42\n");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // …and revalidated after it: the server says it has not changed, and the same store path is used.
    assert_eq!(run(&["eval", "--tarball-ttl", "0", "-E", "(import <nixpkgs>).v"]), "42\n");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert_eq!(run(&["instantiate", "--find-file", "nixpkgs/lib/x.nix"]), found);

    // `-I nixpkgs=channel:NAME` resolves under the configured channel server.
    let o = fhskit(t, &["eval", "-I", "nixpkgs=channel:test-channel", "-E", "<nixpkgs>"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("'channel:test-channel' cannot be downloaded") && err.contains("error: file 'nixpkgs'"),
        "{err}"
    );
    let out = ok(
        t,
        &[
            "eval",
            "--option",
            "channel-url",
            &base,
            "-I",
            "nixpkgs=channel:test-channel",
            "-E",
            "(import <nixpkgs>).v",
        ],
    );
    assert_eq!(out, "42\n");

    // A search path entry that cannot be fetched is skipped with a warning, and the lookup fails as a throw does.
    let o = fhskit_with_path(
        t,
        "nixpkgs=http://127.0.0.1:1/none.tar.gz",
        &["eval", "-E", "(builtins.tryEval <nixpkgs>).success"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "false\n");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(
            "warning: Nix search path entry 'http://127.0.0.1:1/none.tar.gz' cannot be downloaded, ignoring"
        ),
        "{stderr}"
    );
}

#[test]
fn chroot_stores_read_store_paths_under_their_root() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // The copy of ./lib is under the root, at a logical /nix/store path: importing from it reads it there.
    let out = ok(t, &["eval", "--read-write-mode", "-E", "(import \"${./lib}/two.nix\").two"]);
    assert_eq!(out, "2\n");
    let out = ok(t, &["eval", "--read-write-mode", "-E", "builtins.readDir \"${./lib}\""]);
    assert_eq!(out, "{ \"two.nix\" = \"regular\"; }\n");
    // Without writing, the copy is not there, as with Nix.
    let err = fails(t, &["eval", "-E", "import \"${./source.txt}.nix\""]);
    assert!(err.contains("does not exist") || err.contains("is not valid"), "{err}");
}

#[test]
fn a_store_at_the_root_opens_again() {
    // `local?root=/` puts the store at /nix/store: in a private mount namespace with an empty /nix, the first
    // run creates the database there and the second must accept it as fhskit's own (Nix's would be refused).
    if !test_support::is_root() {
        return test_support::unmet("root (a private mount namespace with an empty /nix)");
    }
    if !test_support::have_tool("unshare") {
        return test_support::unmet("unshare (package util-linux)");
    }
    fs::create_dir_all("/nix").unwrap();
    let fhskit = env!("CARGO_BIN_EXE_fhskit");
    let script = format!(
        "mount -t tmpfs tmpfs /nix && cd {golden} && \
         {fhskit} instantiate --store 'local?root=/' -A dep drvs.nix && \
         {fhskit} instantiate --store 'local?root=/' -A multi drvs.nix && \
         test -f /nix/var/nix/db/fhskit-store && \
         rm /nix/var/nix/db/fhskit-store && \
         ! {fhskit} instantiate --store 'local?root=/' -A dep drvs.nix",
        golden = golden().display()
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("-dep.drv\n") && stdout.contains("-multi.drv\n"), "{stdout}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Nix"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn nix_instantiate_settings_and_errors_as_nixpkgs_tests_use_them() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // abort-on-warn (as `--option`, as a flag, and from NIX_ABORT_ON_WARN) turns builtins.warn into an error
    // that tryEval does not catch, after the warning is printed; without it the warning is printed and the
    // value returned.
    let warn = "builtins.tryEval (builtins.warn \"careful\" 1)";
    let out = fhskit(t, &["eval", "--strict", "-E", warn]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{ success = true; value = 1; }\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("evaluation warning: careful"), "{out:?}");
    for args in [&["--option", "abort-on-warn", "true"][..], &["--abort-on-warn"][..]] {
        let mut argv = vec!["eval", "--strict"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["-E", warn]);
        let out = fhskit(t, &argv);
        assert_eq!(out.status.code(), Some(1), "{argv:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("evaluation warning: careful\n"), "{err}");
        assert!(
            err.contains("error: aborting to reveal stack trace of warning, as abort-on-warn is set"),
            "{err}"
        );
    }
    // An abort points at the call, with the source line; stderr is not a terminal, so no escape codes.
    let file = t.join("abort.nix");
    fs::write(&file, "{\n  a = 1;\n  b = abort \"boom\";\n}.b\n").unwrap();
    let err = fails(t, &["eval", file.to_str().unwrap()]);
    assert!(err.starts_with("error: evaluation aborted with the following error message: 'boom'"), "{err}");
    assert!(err.contains(&format!("at {}:3:7:", file.display())), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
    // Escape sequences in evaluated text (nixpkgs' module system colours its messages) do not reach a stderr that
    // is not a terminal, in a trace or in an error, as with Nix.
    let esc = "let e = builtins.fromJSON ''\"\\u001b\"''; in \
               builtins.trace \"${e}[1;35mtraced${e}[0m\" (throw \"value of type ${e}[1;35m\\\"x\\\"${e}[0m\")";
    let out = fhskit(t, &["eval", "-E", esc]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("trace: traced\nerror: value of type \"x\"\n"), "{err:?}");
    // `--timeout` (the build timeout, which modules.sh passes) is accepted; a failed <…> lookup is catchable,
    // as nixpkgs' entry point needs for <nixpkgs-overlays>; positions do not survive mapAttrs.
    let out = ok(
        t,
        &[
            "instantiate",
            "--timeout",
            "1",
            "--eval",
            "--strict",
            "-E",
            "[ (builtins.tryEval (toString <nixpkgs-overlays>)).success \
               (builtins.unsafeGetAttrPos \"a\" (builtins.mapAttrs (n: v: v) { a = 1; })) ]",
        ],
    );
    assert_eq!(out, "[ false null ]\n");
}

#[test]
fn the_package_set_is_found_after_the_search_path_without_joining_nix_path() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fs::create_dir_all(t.join("dir")).unwrap();
    // `builtins.nixPath` lists only what the user gave (Nix's language tests count its entries); `<nixpkgs>` and
    // `findFile` still reach fhskit's own set, which is written into the cache directory.
    let expr = "[ (builtins.length builtins.nixPath) (builtins.pathExists <nixpkgs/default.nix>) \
                (builtins.pathExists (builtins.findFile builtins.nixPath \"nixpkgs/default.nix\")) ]";
    let dir = format!("dir={}", t.join("dir").display());
    let out = Command::new(env!("CARGO_BIN_EXE_fhskit"))
        .args(["eval", "--strict", "-I", &dir, "-E", expr])
        .env("FHSKIT_STORE", format!("local?root={}", t.join("root").display()))
        .env("XDG_CACHE_HOME", t.join("cache"))
        .env("NIX_PATH", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[ 1 true true ]\n");
    assert!(t.join("cache/fhskit/nixpkgs").is_dir());
}

#[test]
fn several_attribute_paths_share_one_call_of_the_expression() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let file = t.join("set.nix");
    fs::write(&file, "{ n ? 1 }: builtins.trace \"called\" { a = n; b.c = n + 1; f = { m ? 2 }: m; }\n")
        .unwrap();
    let f = file.to_str().unwrap();
    let out = fhskit(t, &["eval", f, "--arg", "n", "5", "-A", "a", "-A", "b.c", "-A", "f"]);
    assert!(out.status.success(), "{out:?}");
    // Each path's last value is still called with the arguments (f gives 2), and the set is made once.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5\n6\n2\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr).matches("trace: called").count(), 1, "{out:?}");
    // A missing attribute is still reported for its path.
    let out = fhskit(t, &["eval", f, "-A", "a", "-A", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("attribute 'x' in selection path 'x' not found"),
        "{out:?}"
    );
}
