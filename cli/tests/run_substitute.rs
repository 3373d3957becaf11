//! `fhskit run` takes packages from the binary caches before fetching their `.deb`s: a first machine realises a
//! closure from a signed apt repository served on 127.0.0.1 (its store records which store path each package
//! became) and copies its store to a signed cache (and `fhskit serve` answers the same package mappings); a
//! second machine with only the repository's index runs the same program with that cache, served on 127.0.0.1,
//! as substituter, and the repository is not asked for a single `.deb`. With a key it does not trust, it says so
//! once and fetches the `.deb`s instead.

mod run_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use run_support::{World, fixtures, ok, text};

/// Serves `root` over HTTP/1.1 on 127.0.0.1; returns the port and the count of `.deb` requests.
fn serve_repo(root: PathBuf) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let debs = Arc::new(AtomicUsize::new(0));
    let counter = debs.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (root, counter) = (root.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let path =
                    line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_owned();
                if path.ends_with(".deb") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let file = root.join(path.trim_start_matches('/'));
                match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") && file.is_file() => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes());
                        if !line.starts_with("HEAD") {
                            let _ = stream.write_all(&body);
                        }
                    }
                    _ => {
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                }
            });
        }
    });
    (port, debs)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fhskit serve` of `world`'s store, signing with `key`; returns the server and its URL.
fn serve_store(world: &World, key: &str) -> (Server, String) {
    let mut child = Command::new(run_support::FHSKIT)
        .args(["serve", "--listen", "127.0.0.1:0", "--sign-key", key])
        .env("FHSKIT_STORE", world.path("store"))
        .env("XDG_CONFIG_HOME", world.path("config"))
        .env("XDG_CACHE_HOME", world.path("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (Server(child), url)
}

/// The store paths in `world`'s store directory.
fn store_paths(world: &World) -> Vec<String> {
    let dir = world.path("store/store");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .map(|n| dir.join(n).display().to_string())
        .collect();
    out.sort();
    out
}

/// One GET on 127.0.0.1; the body of a 200 answer.
fn get(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

#[test]
fn run_substitutes_packages_instead_of_fetching_debs() {
    let world = World::new();
    let out = world.path("fixture-repo");
    let o = Command::new("sh")
        .arg(fixtures().join("run-repo.sh"))
        .arg(&out)
        .args(["zlib1g", "liblzma5", "liblz4-1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "building the repository failed:\n{}", text(&o));
    let repo = out.join("repo");
    let (port, debs) = serve_repo(repo.clone());
    let spec = format!(
        "[signed-by={} arch=amd64] http://127.0.0.1:{port}/ testing main",
        repo.join("key.gpg").display()
    );
    let zstd = world.unpack_host_package("zstd", &world.path("zstd-pkg")).join("usr/bin/zstd");
    let zstd = zstd.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["run", "--no-host", "--repo", &spec, "--strategy", "shim", zstd, "--version"]);
        world.fhskit(&args)
    };
    // A machine as new: an empty store and package cache, only the repository's index downloaded.
    let fresh = || {
        for d in ["store", "cache"] {
            let _ = Command::new("chmod").arg("-R").arg("u+w").arg(world.path(d)).output();
            std::fs::remove_dir_all(world.path(d)).unwrap();
            std::fs::create_dir_all(world.path(d)).unwrap();
        }
        ok(&world.fhskit(&["pkgs", "update", "--repo", &spec]));
        debs.store(0, Ordering::SeqCst);
    };

    // The first machine downloads every package of the closure.
    ok(&world.fhskit(&["pkgs", "update", "--repo", &spec]));
    let o = run(&[]);
    assert!(ok(&o).contains("Zstandard CLI"), "{}", text(&o));
    let fetched = debs.swap(0, Ordering::SeqCst);
    assert!(fetched >= 4, "zstd's libraries and libc6 come from the repository: {fetched} .deb requests");

    // It copies its store to a signed cache, which then holds a mapping per package, and serves the same.
    let (sk, pk) = (world.path("cache.sk"), world.path("cache.pk"));
    ok(&world.fhskit(&["store", "generate-key", "test-cache-1", sk.to_str().unwrap(), pk.to_str().unwrap()]));
    let public = std::fs::read_to_string(&pk).unwrap();
    let cache_dir = world.path("binary-cache");
    let to = format!("file://{}?secret-key={}", cache_dir.display(), sk.display());
    let mut args = vec!["store", "copy", "--to", &to];
    let paths = store_paths(&world);
    args.extend(paths.iter().map(String::as_str));
    ok(&world.fhskit(&args));
    let mappings: Vec<PathBuf> =
        std::fs::read_dir(cache_dir.join("fhskit-packages")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(mappings.len() >= 4, "{mappings:?}");
    {
        let (_server, url) = serve_store(&world, sk.to_str().unwrap());
        for m in &mappings {
            let written = std::fs::read_to_string(m).unwrap();
            let served = get(&format!("{url}/fhskit-packages/{}", m.file_name().unwrap().to_string_lossy()));
            assert_eq!(served.as_deref(), Some(written.as_str()));
        }
        assert!(get(&format!("{url}/fhskit-packages/{}", "0".repeat(64))).is_none());
    }
    let (cache_port, _) = serve_repo(cache_dir);
    let cache_url = format!("http://127.0.0.1:{cache_port}");

    // A second machine, with the same store directory: every package comes from the cache, no .deb is asked for.
    fresh();
    let subs = ["--option", "substituters", &cache_url, "--option", "trusted-public-keys", public.trim()];
    let o = run(&subs);
    assert!(ok(&o).contains("Zstandard CLI"), "{}", text(&o));
    assert_eq!(debs.load(Ordering::SeqCst), 0, "the repository was asked for .debs:\n{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("copying path") && err.contains("zlib1g"), "{err}");
    assert!(!err.contains("warning"), "{err}");

    // A third machine that trusts another key: one warning, and the .debs are fetched.
    fresh();
    let other = "other-1:8Jc1uKkuJUrB96uujBbEfOl+qIn5pECWpgrlhTYSA10=";
    let subs = ["--option", "substituters", &cache_url, "--option", "trusted-public-keys", other];
    let o = run(&subs);
    assert!(ok(&o).contains("Zstandard CLI"), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("warning: substitution failed").count(), 1, "{err}");
    assert!(err.contains("not signed by any of the keys"), "{err}");
    assert!(debs.load(Ordering::SeqCst) >= 4, "{}", text(&o));
}
