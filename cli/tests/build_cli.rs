//! `fhskit build`, `fhskit store realise`, `fhskit store query --outputs` and `fhskit log` end to end, with real
//! sandboxes, as root and as uid 65534: derivations whose builder is Debian's static busybox, put into a store in a
//! temporary directory; fixed-output fetches from an HTTP server on 127.0.0.1. Contents:
//! - a build: output path, `./result` GC root, registration (NAR hash, deriver, references, DerivationOutputs), log
//! - the builder's environment and sandbox (variables, ids, hostname, /etc, /dev, only inputs visible, read-only
//!   inputs, no network, umask, timestamps) and canonical outputs
//! - references found by scanning; multiple outputs and `result-<output>` links
//! - `builtin:fetchurl` (`<nix/fetchurl.nix>`), the fake-hash workflow, exit status 102; `unpack` (an xz NAR),
//!   `executable`, `urls` tried in turn; the warning of an unsandboxed build
//! - failures: builder exit (100), `--keep-failed`, timeouts (101), `--keep-going`, dependency failures
//! - `--check` (104, `.check` with `-K`), `--dry-run`, passAsFile, structured attrs, exportReferencesGraph

mod build_support;

use std::collections::HashMap;

use build_support::{Env, User, serve_files, sha256_nix32, text, users};

fn each_user(test: impl Fn(Env)) {
    for user in users() {
        eprintln!("--- as {user:?}");
        if let Some(env) = Env::new(user) {
            test(env);
        }
    }
}

#[test]
fn a_build_is_registered_with_its_outputs() {
    each_user(|env| {
        let f = env.nix("hello", r#"mk "hello" "echo building; echo hi > $out""#);
        let out = env.run(&["build", f.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("this derivation will be built:\n  "), "{err}");
        assert!(err.contains("building '") && err.contains("-hello.drv'...\nbuilding\n"), "{err}");
        assert!(path.starts_with(env.store_dir().to_str().unwrap()) && path.ends_with("-hello"), "{path}");
        assert_eq!(env.read(&path), "hi\n");
        let link = env.work().join("result");
        assert_eq!(std::fs::read_link(&link).unwrap().to_str().unwrap(), path);
        // The link is a GC root, and the derivation is the output's deriver.
        let roots = env.ok(&["store", "roots"]);
        assert!(roots.contains(&format!("{} -> {path}", link.display())), "{roots}");
        let info = env.ok(&["store", "path-info", "--json", &path]);
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        let drv = v[0]["deriver"].as_str().unwrap().to_owned();
        assert!(drv.ends_with("-hello.drv"));
        assert!(v[0]["ultimate"].as_bool().unwrap());
        assert_eq!(v[0]["narSize"], 120);
        assert_eq!(v[0]["references"].as_array().unwrap().len(), 0);
        assert_eq!(env.ok(&["store", "query", "--outputs", &drv]).trim(), path);
        assert_eq!(env.ok(&["log", &path]), "building\n");
        assert_eq!(env.ok(&["log", &drv]), "building\n");
        // Realising again builds nothing and prints the same path.
        let out = env.run(&["store", "realise", &drv]);
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), path);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("building"), "{}", text(&out));
        // The collector keeps it while ./result exists, and the .drv (keep-derivations).
        env.ok(&["store", "gc"]);
        assert!(std::path::Path::new(&path).exists() && std::path::Path::new(&drv).exists());
        std::fs::remove_file(&link).unwrap();
        env.ok(&["store", "gc"]);
        assert!(!std::path::Path::new(&path).exists());
        // No sandbox or build directory is left.
        for dir in [env.store_dir().join(".builds"), env.store_base().join("var/builds")] {
            let left: Vec<_> = std::fs::read_dir(&dir).map(|d| d.flatten().collect()).unwrap_or_default();
            assert!(left.is_empty(), "{} holds {left:?}", dir.display());
        }
    });
}

/// The host's root stays under the sandbox's `/.old-root`, covered by an empty read-only tmpfs: a builder must not
/// uncover it even with every capability in a user and mount namespace of its own, where it can mount and unmount
/// (it mounts and unmounts a tmpfs of its own there; Landlock, on by default, forbids mounting at all, so it is off
/// here to try what a kernel without it allows).
#[test]
fn a_builder_cannot_uncover_the_host_root() {
    each_user(|env| {
        let script = r#"
            exec > $out 2>&1
            unshare -Urm sh -c 'mkdir m && mount -t tmpfs none m && umount m && mount -t tmpfs none m && echo nested-privileged
              umount /.old-root 2>/dev/null && echo nested-unmounted
              umount -l /.old-root 2>/dev/null && echo nested-detached
              mount --move /.old-root m 2>/dev/null && echo nested-moved
              mkdir n && mount --rbind /.old-root n 2>/dev/null && ls -A n | grep -q . && echo nested-bound
              echo nested-sees=$(ls -A /.old-root 2>/dev/null | wc -l)' || echo nested-failed=$?
            "#;
        let f = env.nix("uncover", &format!("mk \"uncover\" ''{}''", script.replace("${", "''${")));
        let path = env.ok(&["build", "--option", "landlock", "false", f.to_str().unwrap()]);
        let got = env.read(&path);
        assert!(got.contains("nested-privileged\n") && got.contains("nested-sees=0\n"), "{got}");
        for bad in ["nested-unmounted", "nested-detached", "nested-moved", "nested-bound"] {
            assert!(!got.contains(bad), "the host's root was uncovered ({bad}):\n{got}");
        }
    });
}

#[test]
fn the_builder_sees_nix_s_environment_and_sandbox() {
    each_user(|env| {
        let server = serve_files(HashMap::from([("/x".to_owned(), b"x".to_vec())]));
        let script = format!(
            r#"
            exec > $out 2>&1
            for v in PATH HOME NIX_STORE NIX_BUILD_TOP TMPDIR TEMPDIR TMP TEMP PWD NIX_LOG_FD TERM NIX_BUILD_CORES name; do
              eval echo "$v=\$$v"
            done
            echo cwd=$(pwd)
            echo ids=$(id -u):$(id -g)
            echo host=$(hostname)
            echo umask=$(umask)
            grep nixbld /etc/passwd
            cat /etc/hosts
            echo store=$(ls $NIX_STORE | sed 's/^[a-z0-9]*-//' | sort | tr '\n' ' ')
            echo sh=$(test -x /bin/sh && echo yes)
            echo dev=$(ls /dev | tr '\n' ' ')
            touch {bb}/x 2>/dev/null && echo input-writable || echo input-read-only
            echo mtime=$(stat -c %Y {bb}/bin/busybox)
            wget -q -O - {url} >/dev/null 2>&1 && echo net=yes || echo net=no
            echo proc=$(cat /proc/self/status | grep -c PPid)
            echo oldroot=$(ls -A /.old-root 2>/dev/null | wc -l)$(umount /.old-root 2>/dev/null && echo -unmounted)$(umount -l /.old-root 2>/dev/null && echo -detached)
            "#,
            bb = env.busybox,
            url = server.url("/x"),
        );
        let f = env.nix("envtest", &format!("mk \"envtest\" ''{}''", script.replace("${", "''${")));
        let path = env.ok(&["build", "--cores", "3", f.to_str().unwrap()]);
        let got = env.read(&path);
        for want in [
            "PATH=/path-not-set\n",
            "HOME=/homeless-shelter\n",
            &format!("NIX_STORE={}\n", env.store_dir().display()),
            "NIX_BUILD_TOP=/build\n",
            "TMPDIR=/build\n",
            "TEMPDIR=/build\n",
            "TMP=/build\n",
            "TEMP=/build\n",
            "PWD=/build\n",
            "NIX_LOG_FD=2\n",
            "TERM=xterm-256color\n",
            "NIX_BUILD_CORES=3\n",
            "name=envtest\n",
            "cwd=/build\n",
            "ids=1000:100\n",
            "host=localhost\n",
            "umask=0022\n",
            "nixbld:x:1000:100:Nix build user:/build:/noshell\n",
            "127.0.0.1 localhost\n",
            "store=busybox envtest\n",
            "sh=yes\n",
            "input-read-only\n",
            "mtime=1\n",
            "net=no\n",
            "proc=1\n",
            // The host's root is covered (an empty, unreadable tmpfs) and the builder cannot uncover it.
            "oldroot=0\n",
        ] {
            assert!(got.contains(want), "missing {want:?} in:\n{got}");
        }
        assert!(
            !got.contains("unmounted") && !got.contains("detached"),
            "the old root was uncovered:\n{got}"
        );
        let devs: Vec<&str> =
            got.lines().find_map(|l| l.strip_prefix("dev=")).unwrap_or_default().split(' ').collect();
        for dev in ["null", "zero", "full", "random", "urandom", "tty", "shm", "pts", "fd", "stdin"] {
            assert!(devs.contains(&dev), "/dev/{dev}: {got}");
        }
        assert_eq!(server.hits("/x"), 0, "the sandbox has no network");
    });
}

#[test]
fn outputs_are_canonical_and_references_scanned() {
    each_user(|env| {
        let f = env.nix(
            "refs",
            r#"let
  a = mk "dep-a" "mkdir -p $out/bin; echo '#!/bin/sh' > $out/bin/run; chmod 4777 $out/bin/run; echo data > $out/data";
  b = mk "uses-a" "mkdir $out; echo ${a}/bin/run > $out/ref; ln -s ${a}/data $out/link; touch -d @12345 $out/ref";
  unused = mk "unused" "echo > $out";
  c = mk "mentions-not" "echo ${builtins.substring 0 5 (toString a)} > $out";
in { inherit a b c; }"#,
        );
        let out = env.ok(&["build", f.to_str().unwrap(), "-A", "b"]);
        let b = out.trim();
        let info: serde_json::Value =
            serde_json::from_str(&env.ok(&["store", "path-info", "--json", b])).unwrap();
        let refs: Vec<&str> =
            info[0]["references"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        assert_eq!(refs.len(), 1, "{refs:?}");
        assert!(refs[0].ends_with("-dep-a"));
        // Canonical: mode 0444/0555 without set-id bits, mtime 1.
        let run = format!("{}/bin/run", refs[0]);
        let meta = std::fs::metadata(&run).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(meta.permissions().mode() & 0o7777, 0o555, "{run}");
        assert_eq!(meta.mtime(), 1);
        assert_eq!(std::fs::metadata(format!("{b}/ref")).unwrap().mtime(), 1);
        assert_eq!(std::fs::metadata(b).unwrap().permissions().mode() & 0o7777, 0o555);
        if env.user == User::Root {
            assert_eq!(meta.uid(), 0, "root's store objects belong to root");
        }
        let closure = env.ok(&["store", "closure", b]);
        assert_eq!(closure.lines().count(), 2, "{closure}");
        let c = env.ok(&["build", f.to_str().unwrap(), "-A", "c", "--no-out-link"]);
        let info: serde_json::Value =
            serde_json::from_str(&env.ok(&["store", "path-info", "--json", c.trim()])).unwrap();
        assert_eq!(info[0]["references"].as_array().unwrap().len(), 0, "a prefix of a hash is no reference");
        assert!(!env.work().join("result-2").exists());
    });
}

#[test]
fn several_outputs_and_result_links() {
    let Some(env) = Env::new(users()[0]) else { return };
    let f = env.nix(
        "multi",
        r#"let d = mkWith { outputs = [ "out" "dev" ]; } "multi" "echo o > $out; echo d > $dev"; in [ d d.dev ]"#,
    );
    let out = env.ok(&["build", f.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].ends_with("-multi") && lines[1].ends_with("-multi-dev"), "{out}");
    let link = |name: &str| std::fs::read_link(env.work().join(name)).unwrap().to_string_lossy().into_owned();
    assert_eq!(link("result"), lines[0]);
    assert_eq!(link("result-dev"), lines[1]);
    assert_eq!(env.read(lines[1]), "d\n");
    let drv = env.ok(&["instantiate", f.to_str().unwrap()]);
    let drv = drv.lines().next().unwrap();
    let outs = env.ok(&["store", "query", "--outputs", drv]);
    assert_eq!(outs.lines().collect::<Vec<_>>(), [lines[1], lines[0]], "sorted by output name");
    let only_dev = env.ok(&["store", "realise", &format!("{drv}!dev")]);
    assert_eq!(only_dev.trim(), lines[1]);
}

#[test]
fn fixed_output_fetch_and_the_fake_hash_workflow() {
    each_user(|env| {
        let data = b"the tarball\n".to_vec();
        let server = serve_files(HashMap::from([("/src.txt".to_owned(), data.clone())]));
        let good = sha256_nix32(env.tmp.path(), &data);
        let fake = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let write = |hash: &str| {
            env.nix(
                "fetch",
                &format!(
                    r#"let src = import <nix/fetchurl.nix> {{ url = "{}"; hash = "{hash}"; }};
in {{ inherit src; use = mk "uses-src" "cat ${{src}} > $out"; }}"#,
                    server.url("/src.txt")
                ),
            )
        };
        let f = write(fake);
        let err = env.fails(&["build", f.to_str().unwrap(), "-A", "use"], 102);
        assert!(err.contains("error: hash mismatch in fixed-output derivation '"), "{err}");
        assert!(err.contains(&format!("\n         specified: {fake}\n            got:    sha256-")), "{err}");
        let got = err.split("got:    ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
        assert!(err.contains("1 dependencies of derivation"), "{err}");
        // The printed hash works, without downloading again.
        let f = write(&got);
        let out = env.ok(&["build", f.to_str().unwrap(), "-A", "use"]);
        assert_eq!(env.read(&out), "the tarball\n");
        assert_eq!(server.hits("/src.txt"), 1);
        let f = write(&format!("sha256:{good}"));
        let out2 = env.ok(&["build", f.to_str().unwrap(), "-A", "use"]);
        assert_eq!(out, out2);
        // The fetched file is a content-addressed path.
        let src = env.ok(&["build", f.to_str().unwrap(), "-A", "src", "--no-out-link"]);
        let src = src.trim();
        assert!(src.ends_with("-src.txt"));
        assert_eq!(env.read(src), "the tarball\n");
        let info: serde_json::Value =
            serde_json::from_str(&env.ok(&["store", "path-info", "--json", src])).unwrap();
        assert_eq!(info[0]["ca"].as_str().unwrap(), format!("fixed:sha256:{good}"));
        // A fixed-output derivation of its own has the network (the sandbox of others has none).
        let f = env.nix(
            "wget",
            &format!(
                r#"mkWith {{ outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "{good}"; }} "wget"
  "wget -q -O $out {}""#,
                server.url("/src.txt")
            ),
        );
        let w = env.ok(&["build", f.to_str().unwrap(), "--no-out-link"]);
        assert_eq!(env.read(&w), "the tarball\n");
        assert_eq!(server.hits("/src.txt"), 2);
        // A download that fails: exit 1 (not a permanent failure), the server's error in the log.
        let f = env.nix(
            "missing",
            &format!(r#"import <nix/fetchurl.nix> {{ url = "{}"; hash = "{fake}"; }}"#, server.url("/nope")),
        );
        let err = env.fails(&["build", f.to_str().unwrap()], 1);
        assert!(err.contains("HTTP error 404"), "{err}");
    });
}

#[test]
fn fetchurl_unpacks_nars_makes_executables_and_tries_each_url() {
    let Some(env) = Env::new(users()[0]) else { return };
    let fhskit = |args: &[&str]| {
        let out = std::process::Command::new(&env.fhskit).args(args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out.stdout
    };
    let nix32 = |path: &std::path::Path| {
        let out = fhskit(&["store", "hash", "--type", "sha256", "--base32", path.to_str().unwrap()]);
        String::from_utf8(out).unwrap().trim().to_owned()
    };
    use std::os::unix::fs::PermissionsExt;
    // A tree served as an xz-compressed NAR (unpack = true), and a script (executable = true).
    let src = env.tmp.path().join("fetch-src");
    std::fs::create_dir_all(src.join("tree/bin")).unwrap();
    std::fs::write(src.join("tree/a.txt"), "A\n").unwrap();
    std::fs::write(src.join("tree/bin/run"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(src.join("tree/bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("tree/l")).unwrap();
    std::fs::write(src.join("tool"), "#!/bin/sh\necho tool says hi\n").unwrap();
    std::fs::set_permissions(src.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let nar = fhskit(&["store", "dump", src.join("tree").to_str().unwrap()]);
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    std::io::Write::write_all(&mut xz, &nar).unwrap();
    let nar_xz = xz.finish().unwrap();
    let tool = std::fs::read(src.join("tool")).unwrap();
    let server =
        serve_files(HashMap::from([("/tree.nar.xz".to_owned(), nar_xz), ("/tool".to_owned(), tool.clone())]));
    let (tree_hash, tool_hash) = (nix32(&src.join("tree")), nix32(&src.join("tool")));
    let flat_hash = sha256_nix32(env.tmp.path(), &tool);
    let f = env.nix(
        "fetch-kinds",
        &format!(
            r#"let
  tree = import <nix/fetchurl.nix> {{ url = "{tree_url}"; unpack = true; sha256 = "{tree_hash}"; }};
  tool = import <nix/fetchurl.nix> {{ url = "{tool_url}"; executable = true; sha256 = "{tool_hash}"; }};
  mirrored = derivation {{
    name = "mirrored"; system = "builtin"; builder = "builtin:fetchurl";
    url = "{gone}"; urls = [ "{gone}" "{tool_url}" ];
    outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "{flat_hash}";
  }};
in {{
  inherit tree tool mirrored;
  use = mk "use-fetched" "cat ${{tree}}/a.txt ${{tree}}/l > $out; ${{tree}}/bin/run >> $out; ${{tool}} >> $out";
}}"#,
            tree_url = server.url("/tree.nar.xz"),
            tool_url = server.url("/tool"),
            gone = server.url("/gone"),
        ),
    );
    let fs = f.to_str().unwrap();
    let tree = env.ok(&["build", fs, "-A", "tree", "--no-out-link"]);
    let tree = tree.trim();
    assert!(tree.ends_with("-tree.nar.xz"), "{tree}");
    assert_eq!(env.read(&format!("{tree}/a.txt")), "A\n");
    assert_eq!(std::fs::read_link(format!("{tree}/l")).unwrap().to_str().unwrap(), "a.txt");
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&format!("{tree}/bin/run")), 0o555);
    let info: serde_json::Value =
        serde_json::from_str(&env.ok(&["store", "path-info", "--json", tree])).unwrap();
    assert_eq!(info[0]["ca"].as_str().unwrap(), format!("fixed:r:sha256:{tree_hash}"));
    let t = env.ok(&["build", fs, "-A", "tool", "--no-out-link"]);
    assert_eq!(mode(t.trim()), 0o555, "executable = true");
    // `urls` are tried in turn: the first answers 404, the second serves the file.
    let out = env.run(&["build", fs, "-A", "mirrored", "--no-out-link"]);
    assert!(out.status.success(), "{}", text(&out));
    let m = String::from_utf8(out.stdout).unwrap();
    assert_eq!(std::fs::read(m.trim()).unwrap(), tool);
    assert_eq!(mode(m.trim()), 0o444);
    assert_eq!(server.hits("/gone"), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP error 404"), "{err}");
    // The fetched paths are usable inputs: the tree's script and the executable run in the sandbox.
    let used = env.ok(&["build", fs, "-A", "use", "--no-out-link"]);
    assert_eq!(env.read(&used), "A\nA\nrun\ntool says hi\n");
    assert_eq!(server.hits("/tree.nar.xz"), 1, "fetched once");
    // Building without the sandbox says so once.
    let f = env.nix("nosandbox", r#"[ (mk "ns-1" "echo 1 > $out") (mk "ns-2" "echo 2 > $out") ]"#);
    let out = env.run(&["build", f.to_str().unwrap(), "--no-out-link", "--option", "sandbox", "false"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("warning: building without the sandbox").count(), 1, "{err}");
}

#[test]
fn failures_exit_statuses_and_keep_failed() {
    each_user(|env| {
        let f = env.nix(
            "fail",
            r#"{
  bad = mk "bad" "echo line one; echo line two >&2; touch /build/left-here; exit 3";
  slow = mk "slow" "sleep 30; echo > $out";
  silent = mk "silent" "echo start; sleep 30; echo > $out";
  good = mk "good" "echo > $out";
  dep = mk "needs-bad" "cat ${mk "bad" "exit 3"} > $out";
}"#,
        );
        let fs = f.to_str().unwrap();
        let err = env.fails(&["build", fs, "-A", "bad"], 100);
        assert!(err.contains("-bad.drv' failed with exit code 3;\n       last 2 log lines:\n       > line one\n       > line two\n       For full logs, run 'fhskit log "), "{err}");
        let err = env.fails(&["build", fs, "-A", "bad", "--keep-failed"], 100);
        let kept =
            err.split("note: keeping build directory '").nth(1).expect(&err).split('\'').next().unwrap();
        assert!(std::path::Path::new(kept).join("left-here").exists(), "{err}");
        let err = env.fails(&["build", fs, "-A", "slow", "--timeout", "1"], 101);
        assert!(err.contains("timed out after 1 seconds"), "{err}");
        let err = env.fails(&["build", fs, "-A", "silent", "--max-silent-time", "1"], 101);
        assert!(err.contains("timed out after 1 seconds of silence"), "{err}");
        let err = env.fails(&["build", fs, "-A", "dep"], 100);
        assert!(
            err.contains("error: 1 dependencies of derivation '")
                && err.contains("-needs-bad.drv' failed to build"),
            "{err}"
        );
        // Without --keep-going the first failure stops the rest; with it, the others are built.
        let err = env.fails(&["build", fs, "-A", "bad", "-A", "good", "--keep-going", "-j", "2"], 100);
        assert!(err.contains("-bad.drv' failed"), "{err}");
        let good_drv = env.ok(&["instantiate", fs, "-A", "good"]);
        let good = env.ok(&["store", "query", "--outputs", good_drv.trim()]);
        assert!(std::path::Path::new(good.trim()).exists(), "good was built with --keep-going: {err}");
        // Nothing of the failed builds is registered or left in the store.
        let dead = env.ok(&["store", "gc", "--print-dead"]);
        assert!(!dead.contains("-bad\n") && !dead.contains("-slow\n"), "{dead}");
        let left: Vec<_> = std::fs::read_dir(env.store_dir().join(".builds")).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    });
}

#[test]
fn check_rebuilds_and_compares() {
    each_user(|env| {
        let f = env.nix(
            "check",
            r#"{
  same = mk "same" "echo same > $out";
  random = mk "random" "head -c 16 /dev/urandom | od -x > $out";
}"#,
        );
        let fs = f.to_str().unwrap();
        let same = env.ok(&["build", fs, "-A", "same"]);
        let out = env.run(&["build", fs, "-A", "same", "--check"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("checking outputs of '"), "{}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), same);
        let random = env.ok(&["build", fs, "-A", "random"]);
        let before = env.read(&random);
        let err = env.fails(&["build", fs, "-A", "random", "--check"], 104);
        assert!(err.contains("may not be deterministic: output '") && err.contains("' differs\n"), "{err}");
        let err = env.fails(&["build", fs, "-A", "random", "--check", "-K"], 104);
        let check = format!("{}.check", random.trim());
        assert!(err.contains(&format!("differs from '{check}'")), "{err}");
        assert!(std::path::Path::new(&check).exists());
        assert_eq!(env.read(&random), before, "the registered output is untouched");
        // Checking what was never built is refused.
        let f2 = env.nix("never", r#"mk "never" "echo > $out""#);
        let err = env.fails(&["build", f2.to_str().unwrap(), "--check"], 1);
        assert!(err.contains("are not valid, so checking is not possible"), "{err}");
    });
}

#[test]
fn dry_run_and_realise_of_drv_paths() {
    let Some(env) = Env::new(users()[0]) else { return };
    let f = env.nix("dry", r#"let a = mk "a" "echo a > $out"; in mk "b" "cat ${a} > $out""#);
    let out = env.run(&["build", "--dry-run", f.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("these 2 derivations will be built:\n  ") && err.find("-a.drv") < err.find("-b.drv"),
        "{err}"
    );
    assert!(out.stdout.is_empty() && !env.work().join("result").exists());
    let drv = env.ok(&["instantiate", f.to_str().unwrap()]);
    let out = env.ok(&["store", "realise", drv.trim()]);
    assert!(out.trim().ends_with("-b"));
    // Without a file, ./default.nix.
    std::fs::copy(&f, env.work().join("default.nix")).unwrap();
    assert_eq!(env.ok(&["build", "--no-out-link"]), out);
    assert_eq!(env.read(&out), "a\n");
    // A .drv given to `build` builds every output and links the result.
    let again = env.ok(&["build", drv.trim()]);
    assert_eq!(again, out);
    assert!(env.work().join("result").exists());
}

#[test]
fn pass_as_file_structured_attrs_and_references_graph() {
    each_user(|env| {
        let f = env.nix(
            "attrs",
            r#"let
  dep = mk "dep" "echo dep > $out";
  paf = mkWith { big = "large value"; passAsFile = [ "big" ]; } "paf"
    "test -z \"$big\" && cat $bigPath > $out";
  sa = mkWith { __structuredAttrs = true; number = 3; list = [ "a" "b" ]; flag = true; } "sa"
    "out=$(awk -F\"'\" '/^declare -A outputs/ {print $4}' $NIX_ATTRS_SH_FILE); cat $NIX_ATTRS_SH_FILE $NIX_ATTRS_JSON_FILE > $out";
  erg = mkWith { exportReferencesGraph = [ "graph" dep ]; } "erg" "cat graph > $out";
  discard = mkWith { __structuredAttrs = true; unsafeDiscardReferences.out = true; } "discard"
    "out=$(awk -F\"'\" '/^declare -A outputs/ {print $4}' $NIX_ATTRS_SH_FILE); echo ${dep} > $out";
in { inherit paf sa erg discard; }"#,
        );
        let fs = f.to_str().unwrap();
        let paf = env.ok(&["build", fs, "-A", "paf", "--no-out-link"]);
        assert_eq!(env.read(&paf), "large value");
        let sa = env.ok(&["build", fs, "-A", "sa", "--no-out-link"]);
        let text = env.read(&sa);
        let sh = format!(
            "declare flag=1\ndeclare -a list=('a' 'b' )\ndeclare name='sa'\ndeclare number=3\n\
             declare -A outputs=(['out']='{}' )\n",
            sa.trim()
        );
        for line in sh.lines() {
            assert!(text.contains(&format!("{line}\n")), "{line:?} not in {text}");
        }
        assert!(text.contains(&format!("\"outputs\":{{\"out\":\"{}\"}}", sa.trim())), "{text}");
        assert!(text.contains("\"list\":[\"a\",\"b\"]"), "{text}");
        let erg = env.ok(&["build", fs, "-A", "erg", "--no-out-link"]);
        let graph = env.read(&erg);
        assert!(graph.contains("-dep\n\n0\n"), "{graph}");
        let discard = env.ok(&["build", fs, "-A", "discard", "--no-out-link"]);
        assert!(env.read(&discard).contains("-dep"));
        let info: serde_json::Value =
            serde_json::from_str(&env.ok(&["store", "path-info", "--json", discard.trim()])).unwrap();
        assert_eq!(info[0]["references"].as_array().unwrap().len(), 0, "unsafeDiscardReferences");
    });
}

#[test]
fn independent_derivations_build_in_parallel() {
    each_user(|env| {
        // Each builder waits for the other to have started: only a parallel build finishes.
        let shared = env.work().display().to_string();
        let waits = |me: &str, other: &str| {
            format!(
                "touch {shared}/{me}; i=0; while [ ! -e {shared}/{other} ]; do sleep 0.1; i=$((i+1)); \
                 if [ $i -gt 300 ]; then exit 1; fi; done; echo {me} > $out"
            )
        };
        let f = env.nix(
            "par",
            &format!(
                "{{ x = mk \"par-x\" \"{}\"; y = mk \"par-y\" \"{}\"; }}",
                waits("x", "y"),
                waits("y", "x")
            ),
        );
        let out = env.ok(&[
            "build",
            f.to_str().unwrap(),
            "-A",
            "x",
            "-A",
            "y",
            "-j",
            "2",
            "--option",
            "sandbox",
            "false",
        ]);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(env.work().join("result").exists() && env.work().join("result-2").exists());
    });
}

#[test]
fn two_processes_never_build_the_same_output_at_once() {
    each_user(|env| {
        let count = env.work().join("count");
        let f = env
            .nix("lock", &format!(r#"mk "locked" "echo run >> {}; sleep 2; echo > $out""#, count.display()));
        let args = ["build", f.to_str().unwrap(), "--no-out-link", "--option", "sandbox", "false"];
        let first = env
            .command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !count.exists() {
            assert!(std::time::Instant::now() < deadline, "the first build did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let second = env.run(&args);
        let first = first.wait_with_output().unwrap();
        assert!(first.status.success(), "{}", text(&first));
        assert!(second.status.success(), "{}", text(&second));
        assert_eq!(first.stdout, second.stdout);
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(err.contains("waiting for lock on '"), "{err}");
        assert_eq!(std::fs::read_to_string(&count).unwrap(), "run\n", "built once");
    });
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).replace('\0', " ").contains(needle)
        {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn a_killed_build_leaves_nothing_behind() {
    each_user(|env| {
        let tag = format!("{}.{}", std::process::id(), env.user as u8 + 5);
        let f = env.nix(
            "killed",
            &format!(r#"{{ slow = mk "slow" "echo partial > $out; sleep {tag}"; quick = mk "quick" "echo > $out"; }}"#),
        );
        let fs = f.to_str().unwrap();
        let mut child = env
            .command()
            .args(["build", fs, "-A", "slow"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while processes_with(&format!("sleep {tag}")).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the builder did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        // The builder dies with fhskit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !processes_with(&format!("sleep {tag}")).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the builder outlived fhskit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let builds = env.store_dir().join(".builds");
        let count = |d: &std::path::Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
        assert_eq!(count(&builds), 1, "the sandbox of the killed build is still there");
        // Nothing was registered; the next build removes what the killed one left.
        let drv = env.ok(&["instantiate", fs, "-A", "slow"]);
        let out = env.ok(&["store", "query", "--outputs", drv.trim()]);
        let info = env.run(&["store", "path-info", out.trim()]);
        assert!(!info.status.success(), "{}", text(&info));
        env.ok(&["build", fs, "-A", "quick", "--no-out-link"]);
        assert_eq!(count(&builds), 0);
        assert_eq!(count(&env.store_base().join("var/builds")), 0);
    });
}

#[test]
fn keep_outputs_and_keep_derivations_in_the_collector() {
    let Some(env) = Env::new(users()[0]) else { return };
    let f = env.nix("gc", r#"let a = mk "gc-a" "echo a > $out"; in mk "gc-b" "cat ${a} > $out""#);
    let link = env.ok(&["instantiate", f.to_str().unwrap(), "--add-root", "drv-root"]);
    let drv = std::fs::read_link(link.trim()).unwrap().to_string_lossy().into_owned();
    let b = env.ok(&["build", f.to_str().unwrap(), "--no-out-link"]);
    let a_drv = env.ok(&["store", "closure", &drv]);
    let a_drv = a_drv.lines().find(|l| l.ends_with("-gc-a.drv")).unwrap().to_owned();
    let a = env.ok(&["store", "query", "--outputs", &a_drv]);
    let conf = env.work().join("config/fhskit");
    std::fs::create_dir_all(&conf).unwrap();
    // keep-outputs: outputs of live derivations stay.
    std::fs::write(conf.join("nix.conf"), "keep-outputs = true\n").unwrap();
    let dead = env.ok(&["store", "gc", "--print-dead"]);
    assert!(!dead.contains(b.trim()) && !dead.contains(a.trim()), "{dead}");
    // Without it they go, the derivations stay.
    std::fs::write(conf.join("nix.conf"), "# default\n").unwrap();
    let dead = env.ok(&["store", "gc", "--print-dead"]);
    assert!(dead.contains(b.trim()) && dead.contains(a.trim()) && !dead.contains(drv.trim()), "{dead}");
    // keep-derivations false: a result root does not keep its derivation.
    std::fs::remove_file(env.work().join("drv-root")).unwrap();
    env.ok(&["build", f.to_str().unwrap()]);
    std::fs::write(conf.join("nix.conf"), "keep-derivations = false\n").unwrap();
    let dead = env.ok(&["store", "gc", "--print-dead"]);
    assert!(dead.contains(drv.trim()) && !dead.contains(b.trim()), "{dead}");
    std::fs::write(conf.join("nix.conf"), "").unwrap();
    let dead = env.ok(&["store", "gc", "--print-dead"]);
    assert!(!dead.contains(drv.trim()), "{dead}");
}

#[test]
fn landlock_keeps_an_unprivileged_builder_from_writing_its_sandbox() {
    if !users().contains(&User::Nobody) {
        return;
    }
    let Some(env) = Env::new(User::Nobody) else { return };
    let f = env.nix(
        "ll",
        r#"mk "ll" "if echo x >> /etc/passwd 2>/dev/null; then echo writable; else echo denied; fi > $out""#,
    );
    let out = env.ok(&["build", f.to_str().unwrap(), "--no-out-link"]);
    // SAFETY: landlock_create_ruleset(2) with the VERSION flag only returns the ABI version.
    let abi =
        unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    if abi > 0 {
        assert_eq!(env.read(&out), "denied\n");
    } else {
        test_support::unmet("Landlock in the kernel");
    }
    let f = env.nix(
        "ll2",
        r#"mk "ll2" "if echo x >> /etc/passwd 2>/dev/null; then echo writable; else echo denied; fi > $out""#,
    );
    let out = env.ok(&["build", f.to_str().unwrap(), "--no-out-link", "--option", "landlock", "false"]);
    assert_eq!(env.read(&out), "writable\n", "without Landlock the sandbox's /etc is the user's own");
}

#[test]
fn an_fhs_root_shows_at_the_sandbox_root() {
    each_user(|env| {
        // `fhskitRoot` names an input whose usr/, bin/ and etc/ entries the sandbox shows at its root; the
        // sandbox's own /etc files stay, and /bin/sh comes from the tree instead of sandbox-paths.
        let root = env.work().join("root");
        std::fs::create_dir_all(root.join("usr/share")).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("usr/share/marker"), "usr\n").unwrap();
        std::fs::write(root.join("usr/bin/tool"), "tree-bin\n").unwrap();
        std::fs::write(root.join("etc/fhs-marker"), "etc\n").unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        let f = env.nix(
            "fhs",
            r#"mkWith { fhskitRoot = "${./root}"; } "fhs" ''
              cat /usr/share/marker /etc/fhs-marker /bin/tool > $out
              grep -q nixbld /etc/passwd && echo own-passwd >> $out
            ''"#,
        );
        let out = env.ok(&["build", f.to_str().unwrap()]);
        assert_eq!(env.read(&out), "usr\netc\ntree-bin\nown-passwd\n");
        // Without the attribute nothing of it shows.
        let g = env.nix(
            "plain",
            r#"mk "plain" "test -e /usr/share/marker && echo seen > $out || echo unseen > $out""#,
        );
        let out = env.ok(&["build", g.to_str().unwrap()]);
        assert_eq!(env.read(&out), "unseen\n");
        // A tree that is not an input is refused.
        let h = env.nix(
            "notinput",
            r#"mkWith { fhskitRoot = builtins.unsafeDiscardStringContext "${./root}"; } "ni" "echo > $out""#,
        );
        let err = text(&env.run(&["build", h.to_str().unwrap()]));
        assert!(err.contains("'fhskitRoot' = '") && err.contains("is not among its inputs"), "{err}");
    });
}

#[test]
fn fhskit_root_merges_debian_trees_and_their_references() {
    each_user(|env| {
        // Two package trees as Debian lays them out: `tool` links to a file of `base` through a relative link
        // that only resolves in the merged tree (gcc → gcc-12); `base` is reached only through a reference.
        let w = env.work();
        std::fs::create_dir_all(w.join("base/usr/bin")).unwrap();
        std::fs::create_dir_all(w.join("base/usr/share/doc/base")).unwrap();
        std::fs::create_dir_all(w.join("base/DEBIAN")).unwrap();
        std::fs::write(w.join("base/usr/bin/tool-12"), "real tool\n").unwrap();
        std::fs::write(w.join("base/usr/share/doc/base/copyright"), "doc\n").unwrap();
        std::fs::write(w.join("base/DEBIAN/postinst"), "#!/bin/sh\n").unwrap();
        std::fs::write(w.join("base/usr/bin/both"), "from base\n").unwrap();
        let base = env.ok(&["store", "add", "--name", "base", w.join("base").to_str().unwrap()]);
        let base = base.trim();
        std::fs::create_dir_all(w.join("tool/usr/bin")).unwrap();
        std::fs::create_dir_all(w.join("tool/nix-support")).unwrap();
        std::os::unix::fs::symlink("tool-12", w.join("tool/usr/bin/tool")).unwrap();
        std::fs::write(w.join("tool/usr/bin/both"), "from tool\n").unwrap();
        std::fs::write(w.join("tool/nix-support/propagated-build-inputs"), format!("{base}\n")).unwrap();
        let tool = env.ok(&[
            "store",
            "add",
            "--name",
            "tool",
            "--reference",
            base,
            w.join("tool").to_str().unwrap(),
        ]);
        let tool = tool.trim();
        let f = env.nix(
            "root",
            &format!(
                r#"let root = derivation {{ name = "root"; system = "x86_64-linux"; builder = "builtin:fhskit-root";
                     paths = [ (builtins.storePath "{tool}") ]; }};
                 in mkWith {{ fhskitRoot = root; }} "use-root" ''
                   cat /usr/bin/tool /usr/bin/both > $out
                   test -e /usr/share/doc/base && echo docs >> $out
                   test -e /DEBIAN && echo control >> $out
                   test -e /nix-support && echo support >> $out
                   true
                 ''"#
            ),
        );
        let out = env.ok(&["build", f.to_str().unwrap()]);
        // The relative link resolved in the tree; the first package listed wins a path both provide; docs,
        // control files and nix-support stay out.
        assert_eq!(env.read(&out), "real tool\nfrom tool\n");
    });
}

/// `fhskit build -v … 2>&1 | head -1`: with whoever reads its messages gone, a build still ends (and succeeds): a
/// message it cannot print is dropped, not a panic in the build thread that the scheduler would wait for forever.
#[test]
fn a_build_ends_when_its_messages_reader_has_gone() {
    each_user(|env| {
        let f = env.nix(
            "gone",
            r#"let a = mk "gone-a" "echo a > $out"; in mk "gone-b" "cat ${a} > $out; echo b >> $out""#,
        );
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .command()
            .args(["build", "-v", "--no-out-link", "-j", "2", f.to_str().unwrap()])
            .stderr(writer)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", out.status);
        let path = String::from_utf8(out.stdout).unwrap();
        assert_eq!(env.read(path.trim()), "a\nb\n");
    });
}
