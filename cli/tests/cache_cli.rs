//! End to end: binary caches from the command line. `fhskit store copy --to/--from` over `file://`, `http://`
//! (`fhskit serve`, and a misbehaving server of this test) and `s3://` (a real S3 server, `s3s-fs`, on
//! 127.0.0.1); signatures made by `store generate-key`/`sign` and by Nix 2.8; interop both ways with Nix 2.8
//! (`nix copy`, `nix-store -r`); tampered NARs and narinfos, dropped connections and 500s refused with nothing
//! registered; an env.toml naming missing store paths realised from a cache.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use test_support::http::{Response, Server};

/// A test directory with an empty configuration and its own XDG cache (the narinfo disk cache).
struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        T { dir }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }

    /// `fhskit ARGS` on the chroot store `root-STORE`.
    fn run(&self, store: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhskit"));
        cmd.args(args)
            .env("FHSKIT_STORE", format!("local?root={}", self.s(&format!("root-{store}"))))
            .env("FHSKIT_CONFIG", self.p("config.toml"))
            .env("XDG_CACHE_HOME", self.p("xdg-cache"))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn ok(&self, store: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
        let out = self.run(store, args, envs);
        assert!(out.status.success(), "fhskit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, store: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
        let out = self.run(store, args, envs);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "fhskit {args:?} should fail: {err}");
        assert!(err.contains("error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    /// A chain of `n` paths in store `store`, each referring to the one before; returns them, first to last.
    fn chain(&self, store: &str, n: usize, big: Option<usize>) -> Vec<String> {
        let mut paths: Vec<String> = Vec::new();
        for i in 0..n {
            let d = self.p(&format!("src/p{i:03}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("data"), format!("path {i}\n").repeat(50)).unwrap();
            if i == n / 2
                && let Some(size) = big
            {
                // Incompressible, so the compressed NAR is large too (multipart uploads).
                let mut bytes = vec![0u8; size];
                let mut x: u64 = 0x9e3779b97f4a7c15;
                for b in &mut bytes {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                std::fs::write(d.join("big.bin"), bytes).unwrap();
            }
            let mut args = vec!["store", "add", "--name"];
            let name = format!("p{i:03}");
            args.push(&name);
            let prev;
            if let Some(p) = paths.last() {
                prev = p.clone();
                std::fs::write(d.join("ref"), &prev).unwrap();
                args.extend(["--reference", &prev]);
            }
            let ds = d.display().to_string();
            args.push(&ds);
            paths.push(self.ok(store, &args, &[]).trim().to_owned());
        }
        paths
    }

    fn key(&self, name: &str) -> (String, String) {
        let (sk, pk) = (self.s(&format!("{name}.sk")), self.s(&format!("{name}.pk")));
        self.ok("a", &["store", "generate-key", name, &sk, &pk], &[]);
        let public = std::fs::read_to_string(&pk).unwrap();
        (sk, public)
    }
}

fn valid(t: &T, store: &str, path: &str) -> bool {
    t.run(store, &["store", "path-info", path], &[]).status.success()
}

fn narinfo_path(cache: &Path, store_path: &str) -> PathBuf {
    let base = store_path.rsplit('/').next().unwrap();
    cache.join(format!("{}.narinfo", &base[..32]))
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(text)).unwrap();
}

fn drop_ca(text: String) -> String {
    text.lines().filter(|l| !l.starts_with("CA: ")).map(|l| format!("{l}\n")).collect()
}

#[test]
fn file_cache_round_trip_with_signatures() {
    let t = T::new();
    let (sk, pk) = t.key("test-1");
    let paths = t.chain("a", 5, None);
    let top = paths.last().unwrap();
    let url = format!("file://{}?secret-key={sk}&compression=zstd&write-nar-listing=true", t.s("cache"));
    let copied = t.ok("a", &["store", "copy", "--to", &url, top], &[]);
    assert_eq!(copied.lines().collect::<Vec<_>>(), paths, "the whole closure, references first");
    assert_eq!(std::fs::read_to_string(t.p("cache/nix-cache-info")).unwrap(), "StoreDir: /nix/store\n");
    let ni = std::fs::read_to_string(narinfo_path(&t.p("cache"), top)).unwrap();
    assert!(ni.contains("Compression: zstd\n") && ni.contains("Sig: test-1:"), "{ni}");
    assert!(ni.lines().nth(1).unwrap().ends_with(".nar.zst"), "{ni}");
    assert!(narinfo_path(&t.p("cache"), top).with_extension("ls").exists());
    // A second copy uploads nothing.
    assert_eq!(t.ok("a", &["store", "copy", "--to", &url, top], &[]), "");

    // Make the paths look input-addressed (no CA), so only signatures vouch for them.
    for p in &paths {
        edit(&narinfo_path(&t.p("cache"), p), drop_ca);
    }
    let from = format!("file://{}", t.s("cache"));
    let err = t.fails("b", &["store", "copy", "--from", &from, top], &[]);
    assert!(err.contains("is not signed by any of the keys in 'trusted-public-keys'"), "{err}");
    assert!(!valid(&t, "b", &paths[0]), "nothing registered");
    let got =
        t.ok("b", &["--option", "trusted-public-keys", &pk, "store", "copy", "--from", &from, top], &[]);
    assert_eq!(got.lines().count(), 5);
    let info_a = t.ok("a", &["store", "path-info", "--json", top], &[]);
    let info_b = t.ok("b", &["store", "path-info", "--json", top], &[]);
    let hash = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()[0]["narHash"].clone();
    assert_eq!(hash(&info_a), hash(&info_b));
    // verify --sigs: the substituted paths carry the cache's signature; the source's own paths do not.
    t.ok("b", &["--option", "trusted-public-keys", &pk, "store", "verify", "--sigs"], &[]);
    // The local paths in store a are content-addressed, hence trusted; signing adds signatures all the same.
    assert_eq!(t.ok("a", &["store", "sign", "-k", &sk, "--closure", top], &[]).trim(), "added 5 signatures");
    let wrong = "other-1:8Jc1uKkuJUrB96uujBbEfOl+qIn5pECWpgrlhTYSA10=";
    let out = t.run("b", &["--option", "trusted-public-keys", wrong, "store", "verify", "--sigs"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is untrusted"));
    // Symlinks out of the store, as NixOS paths have them (`/dev/null`, `/etc/…`, `../..`), come back as they were.
    let links = t.p("src/links");
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink("/dev/null", links.join("masked.service")).unwrap();
    std::os::unix::fs::symlink("../../bin/man", links.join("man")).unwrap();
    let lp = t.ok("a", &["store", "add", &links.display().to_string()], &[]).trim().to_owned();
    t.ok("a", &["store", "copy", "--to", &url, &lp], &[]);
    t.ok("c", &["--option", "trusted-public-keys", &pk, "store", "copy", "--from", &from, &lp], &[]);
    let restored = t.p(&format!("root-c{lp}"));
    assert_eq!(std::fs::read_link(restored.join("masked.service")).unwrap(), Path::new("/dev/null"));
    assert_eq!(std::fs::read_link(restored.join("man")).unwrap(), Path::new("../../bin/man"));
    // Bad input: a missing key file, an unknown setting, a cache of another store directory.
    t.fails("a", &["store", "sign", "-k", "/nonexistent/key", top], &[]);
    std::fs::write(t.p("config.toml"), "[cache]\nsubstituterz = []\n").unwrap();
    let err = t.fails("b", &["store", "copy", "--from", "file:///nonexistent", top], &[]);
    assert!(err.contains("setting 'substituterz': unknown setting"), "{err}");
    std::fs::write(t.p("config.toml"), "").unwrap();
    std::fs::create_dir_all(t.p("other")).unwrap();
    std::fs::write(t.p("other/nix-cache-info"), "StoreDir: /gnu/store\n").unwrap();
    let err = t.fails("b", &["store", "copy", "--from", &format!("file://{}", t.s("other")), top], &[]);
    assert!(err.contains("is for Nix stores with prefix '/gnu/store'"), "{err}");
    let err = t.fails("a", &["store", "generate-key", "x", &sk, &t.s("new.pk")], &[]);
    assert!(err.contains("already exists"), "{err}");
}

fn nix(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).output().unwrap()
}

fn have_nix() -> bool {
    if test_support::have_tool("nix") && test_support::have_tool("nix-store") {
        return true;
    }
    test_support::unmet("nix-bin (Nix 2.8) for the interop tests");
    false
}

const NIX_OPTS: [&str; 6] = ["--option", "substituters", "", "--option", "build-users-group", ""];

#[test]
fn nix_writes_fhskit_reads() {
    if !have_nix() {
        return;
    }
    let t = T::new();
    std::fs::create_dir_all(t.p("in/d")).unwrap();
    std::fs::write(t.p("in/d/hello.txt"), "hello\n").unwrap();
    let nroot = format!("local?root={}", t.s("nixroot"));
    let (sk, pk) = (t.s("nix.sk"), t.s("nix.pk"));
    assert!(nix(&["nix-store", "--generate-binary-cache-key", "nix-key-1", &sk, &pk]).status.success());
    let added = nix(&["nix-store", "--store", &nroot, "--add", &t.s("in/d")]);
    let path = String::from_utf8(added.stdout).unwrap().trim().to_owned();
    assert!(path.starts_with("/nix/store/"), "{}", String::from_utf8_lossy(&added.stderr));
    for (compression, dir) in [("xz", "nixcache-xz"), ("zstd", "nixcache-zstd"), ("bzip2", "nixcache-bz2")] {
        let url = format!("file://{}?secret-key={sk}&compression={compression}", t.s(dir));
        let mut args = vec![
            "nix",
            "--extra-experimental-features",
            "nix-command",
            "copy",
            "--store",
            &nroot,
            "--to",
            &url,
            &path,
        ];
        args.extend(NIX_OPTS);
        let out = nix(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        edit(&narinfo_path(&t.p(dir), &path), drop_ca);
        let from = format!("file://{}", t.s(dir));
        let store = format!("b-{compression}");
        let err = t.fails(&store, &["store", "copy", "--from", &from, &path], &[]);
        assert!(err.contains("not signed"), "{err}");
        let pk_text = std::fs::read_to_string(&pk).unwrap();
        t.ok(
            &store,
            &["--option", "trusted-public-keys", &pk_text, "store", "copy", "--from", &from, &path],
            &[],
        );
        let file = t.p(&format!("root-{store}{path}/hello.txt"));
        assert_eq!(std::fs::read_to_string(file).unwrap(), "hello\n");
    }
}

/// Starts `fhskit serve` on a free port of 127.0.0.1; returns the child and the URL.
fn serve(t: &T, store: &str, extra: &[&str]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhskit"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("FHSKIT_STORE", format!("local?root={}", t.s(&format!("root-{store}"))))
        .env("FHSKIT_CONFIG", t.p("config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (child, url)
}

#[test]
fn fhskit_writes_and_serves_nix_reads() {
    if !have_nix() {
        return;
    }
    let t = T::new();
    let (sk, pk) = t.key("fhs-1");
    let paths = t.chain("a", 3, None);
    let top = paths.last().unwrap().clone();
    let url = format!("file://{}?secret-key={sk}", t.s("cache"));
    t.ok("a", &["store", "copy", "--to", &url, &top], &[]);
    for p in &paths {
        edit(&narinfo_path(&t.p("cache"), p), drop_ca);
    }
    let from = format!("file://{}", t.s("cache"));
    let copy = |root: &str, key: &str| {
        let store = format!("local?root={}", t.s(root));
        let mut args = vec![
            "nix",
            "--extra-experimental-features",
            "nix-command",
            "copy",
            "--from",
            &from,
            "--store",
            &store,
        ];
        args.extend(NIX_OPTS);
        args.extend(["--option", "trusted-public-keys", key, &top]);
        nix(&args)
    };
    let out = copy("nix-untrusted", "other-1:8Jc1uKkuJUrB96uujBbEfOl+qIn5pECWpgrlhTYSA10=");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lacks a valid signature"));
    let out = copy("nix-trusted", &pk);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.p(&format!("nix-trusted{top}/ref")).exists());

    // Nix substitutes from `fhskit serve` (signing on the fly) with nix-store -r.
    let (mut child, http) = serve(&t, "a", &["--sign-key", &sk]);
    let store = format!("local?root={}", t.s("nix-served"));
    let out = nix(&[
        "nix-store",
        "--store",
        &store,
        "-r",
        &top,
        "--option",
        "substituters",
        &http,
        "--option",
        "trusted-public-keys",
        &pk,
        "--option",
        "build-users-group",
        "",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("these 3 paths will be fetched"), "{err}");
    // And fhskit from fhskit serve, through the narinfo disk cache.
    let got =
        t.ok("c", &["--option", "trusted-public-keys", &pk, "store", "copy", "--from", &http, &top], &[]);
    assert_eq!(got.lines().count(), 3);
    assert!(t.p("xdg-cache/fhskit/binary-cache-v6.sqlite").exists());
    let mut raw = TcpStream::connect(http.trim_start_matches("http://")).unwrap();
    raw.write_all(b"GET /nix-cache-info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    raw.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200")
            && resp.ends_with("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n"),
        "{resp}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on port {port}");
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_file(dir: &Path, name_end: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name_end) {
                return Some(f);
            }
        } else if p.to_string_lossy().ends_with(name_end) {
            return Some(p);
        }
    }
    None
}

#[test]
fn s3_closure_of_110_paths() {
    if !test_support::have_tool("s3s-fs") {
        test_support::unmet(
            "s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary), the S3 server",
        );
        return;
    }
    let t = T::new();
    let (sk, pk) = t.key("s3-1");
    let root = t.p("s3root");
    std::fs::create_dir_all(root.join("cache")).unwrap();
    let port = free_port();
    let server = Kill(
        Command::new("s3s-fs")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                "AKTEST",
                "--secret-key",
                "SKTEST",
            ])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(port);
    let creds = [("AWS_ACCESS_KEY_ID", "AKTEST"), ("AWS_SECRET_ACCESS_KEY", "SKTEST")];
    let paths = t.chain("a", 110, Some(12 << 20));
    let top = paths.last().unwrap().clone();
    let base = format!("s3://cache/prefix?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    let url = format!("{base}&compression=zstd&secret-key={sk}&multipart-threshold=6000000");
    // Wrong credentials are refused by the server.
    let err = t.fails(
        "a",
        &["store", "copy", "--to", &url, &top],
        &[("AWS_ACCESS_KEY_ID", "AKTEST"), ("AWS_SECRET_ACCESS_KEY", "nope")],
    );
    assert!(err.contains("403") || err.contains("does not appear"), "{err}");
    let copied = t.ok("a", &["store", "copy", "--to", &url, &top], &creds);
    assert_eq!(copied.lines().count(), 110);
    assert!(root.join("cache/prefix/nix-cache-info").exists());
    // Credentials from a profile file work too.
    let aws = t.p("aws-credentials");
    std::fs::write(&aws, "[ci]\naws_access_key_id = AKTEST\naws_secret_access_key = SKTEST\n").unwrap();
    let profile_env = [("AWS_SHARED_CREDENTIALS_FILE", aws.to_str().unwrap())];
    let got = t.ok(
        "b",
        &[
            "--option",
            "trusted-public-keys",
            &pk,
            "store",
            "copy",
            "--from",
            &format!("{base}&profile=ci"),
            &top,
        ],
        &profile_env,
    );
    assert_eq!(got.lines().count(), 110);
    let big = &paths[55];
    let info_a = t.ok("a", &["store", "path-info", "--json", big], &[]);
    let info_b = t.ok("b", &["store", "path-info", "--json", big], &[]);
    let hash = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()[0]["narHash"].clone();
    assert_eq!(hash(&info_a), hash(&info_b), "the multipart NAR came back whole");

    // Tamper one NAR (replaced by another path's, a valid zstd stream with the wrong hash) and one narinfo
    // (made input-addressed, its NarSize changed: the signature no longer matches).
    let cache_dir = root.join("cache/prefix");
    let nar_of = |p: &str| {
        let ni = std::fs::read_to_string(narinfo_path(&cache_dir, p)).unwrap();
        cache_dir.join(ni.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap())
    };
    std::fs::copy(nar_of(&paths[10]), nar_of(&paths[20])).unwrap();
    edit(&narinfo_path(&cache_dir, &paths[30]), |s| drop_ca(s).replace("NarSize: ", "NarSize: 1"));
    // The narinfo disk cache still holds the good narinfos (30 days, as Nix): look again.
    let fresh = ["--option", "narinfo-cache-positive-ttl", "0", "--option", "trusted-public-keys", &pk];
    for (store, victim, expect) in
        [("c", &paths[20], "hash mismatch importing path"), ("d", &paths[30], "not signed")]
    {
        let out = t.run(store, &[&fresh[..], &["store", "copy", "--from", &base, victim]].concat(), &creds);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expect), "{err}");
        assert!(!valid(&t, store, victim), "nothing registered for a refused path");
    }
    assert!(valid(&t, "c", &paths[19]), "the good references were substituted");
    assert!(find_file(&root, ".nar.zst").is_some());
    drop(server);
}

/// What the misbehaving server does to NAR requests.
#[derive(Clone, Copy)]
enum Fault {
    /// None: a plain static server that also stores PUT uploads, as an HTTP binary cache for writing.
    None,
    DropMidNar,
    Error500,
}

/// Serves `dir` over HTTP on 127.0.0.1 with a fault on `nar/` requests.
fn faulty_server(dir: PathBuf, fault: Fault) -> Server {
    Server::start(move |req| {
        let target = req.path.trim_start_matches('/');
        if req.method == "PUT" {
            let stored = !target.contains("..")
                && std::fs::create_dir_all(dir.join(target).parent().unwrap()).is_ok()
                && std::fs::write(dir.join(target), &req.body).is_ok();
            return Response::new(if stored { 201 } else { 500 }, Vec::new());
        }
        match (std::fs::read(dir.join(target)), target.starts_with("nar/"), fault) {
            (Err(_), _, _) => Response::not_found(),
            (Ok(_), true, Fault::Error500) => Response::new(500, Vec::new()),
            (Ok(b), true, Fault::DropMidNar) => {
                let half = b.len() / 2;
                Response::ok(b).cut_after(half)
            }
            (Ok(b), _, _) => Response::ok(b),
        }
    })
}

#[test]
fn faults_register_nothing_and_fall_back_with_one_warning() {
    let t = T::new();
    let (sk, pk) = t.key("f-1");
    let paths = t.chain("a", 2, Some(256 << 10));
    let top = paths.last().unwrap().clone();
    t.ok(
        "a",
        &[
            "store",
            "copy",
            "--to",
            &format!("file://{}?secret-key={sk}&compression=none", t.s("cache")),
            &top,
        ],
        &[],
    );
    for (fault, expect) in [(Fault::DropMidNar, "cannot substitute"), (Fault::Error500, "500")] {
        let server = faulty_server(t.p("cache"), fault);
        let url = server.url("");
        let out =
            t.run("b", &["--option", "trusted-public-keys", &pk, "store", "copy", "--from", &url, &top], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expect) && !err.contains("panicked"), "{err}");
        for p in &paths {
            assert!(!valid(&t, "b", p), "nothing registered after a failed download");
        }
    }
    // A wrong NarHash (an input-addressed path, so no content address vouches for it), trusted cache.
    edit(&narinfo_path(&t.p("cache"), &paths[0]), |s| {
        let s = drop_ca(s);
        let line = s.lines().find(|l| l.starts_with("NarHash: ")).unwrap().to_owned();
        s.replace(&line, "NarHash: sha256:0000000000000000000000000000000000000000000000000000")
    });
    let trusted = format!("file://{}?trusted=true", t.s("cache"));
    let err = t.fails("b", &["store", "copy", "--from", &trusted, &paths[0]], &[]);
    assert!(err.contains("hash mismatch importing path"), "{err}");
    assert!(!valid(&t, "b", &paths[0]));

    // An env.toml naming a missing store path: substituted from the configured cache before the env is built;
    // when the only cache fails, one warning, then the env's own error.
    let good = T::new();
    let (gsk, gpk) = good.key("g-1");
    let gpaths = good.chain("a", 2, None);
    let gtop = gpaths.last().unwrap();
    good.ok(
        "a",
        &["store", "copy", "--to", &format!("file://{}?secret-key={gsk}", good.s("cache")), gtop],
        &[],
    );
    let store_b = good.s("root-b");
    let env = good.p("env.toml");
    std::fs::write(&env, format!("name = \"e\"\npackages = [\"{store_b}{gtop}\"]\n")).unwrap();
    let cfg = format!(
        "[cache]\nsubstituters = [\"file://{}\"]\ntrusted-public-keys = [\"{gpk}\"]\n",
        good.s("cache")
    );
    std::fs::write(good.p("config.toml"), cfg).unwrap();
    let out = good.run("b", &["env", "build", &env.display().to_string(), "-o", &good.s("envtree")], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("these 2 paths were fetched"), "{err}");
    assert!(valid(&good, "b", gtop));
    let server = faulty_server(good.p("cache"), Fault::Error500);
    let url = server.url("");
    std::fs::write(
        good.p("config.toml"),
        format!("[cache]\nsubstituters = [\"{url}\"]\ntrusted-public-keys = [\"{gpk}\"]\n"),
    )
    .unwrap();
    let env2 = good.p("env2.toml");
    std::fs::write(&env2, format!("name = \"e\"\npackages = [\"{}{gtop}\"]\n", good.s("root-c"))).unwrap();
    let out = good.run("c", &["env", "build", &env2.display().to_string(), "-o", &good.s("envtree2")], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(err.contains("substitution failed") && err.contains("500"), "{err}");
    assert!(err.contains("cannot open package directory") && !err.contains("panicked"), "{err}");
    assert!(!valid(&good, "c", &gpaths[0]));
}

#[test]
fn http_cache_written_with_put() {
    let t = T::new();
    let (sk, pk) = t.key("put-1");
    let paths = t.chain("a", 3, None);
    let top = paths.last().unwrap().clone();
    std::fs::create_dir_all(t.p("served")).unwrap();
    let server = faulty_server(t.p("served"), Fault::None);
    let url = server.url("");
    t.ok("a", &["store", "copy", "--to", &format!("{url}?secret-key={sk}&compression=xz"), &top], &[]);
    assert_eq!(std::fs::read_to_string(t.p("served/nix-cache-info")).unwrap(), "StoreDir: /nix/store\n");
    assert!(narinfo_path(&t.p("served"), &top).exists());
    let got =
        t.ok("b", &["--option", "trusted-public-keys", &pk, "store", "copy", "--from", &url, &top], &[]);
    assert_eq!(got.lines().count(), 3);
}
