//! Reliability of the store under abuse, through the real `fhskit` binary: processes killed with SIGKILL at
//! pseudo-random moments (fixed seed) during add, import and gc must leave a store whose every registered path
//! verifies; several writers and a collector running at once must lose no rooted path and never deadlock.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_support::rng::Rng;

/// `fhskit` on the store `store` (a base directory or a `local?root=DIR` spec).
fn fhskit(store: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhskit"));
    cmd.env("FHSKIT_STORE", store).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    cmd
}

/// Waits for a child, failing the test (instead of hanging) if it takes longer than `limit`. Its pipes are
/// drained meanwhile, so a child writing more than a pipe holds never blocks on us.
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}: deadlock?");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::process::Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = wait_bounded(cmd.spawn().unwrap(), Duration::from_secs(120), what);
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A tree of `files` small files whose contents depend on `seed`.
fn make_tree(dir: &Path, seed: usize, files: usize) {
    for i in 0..files {
        let sub = dir.join(format!("d{}", i % 7));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f{i}")), format!("tree {seed} file {i}\n").repeat(1 + i % 5)).unwrap();
    }
}

fn verify_clean(store: impl AsRef<std::ffi::OsStr>) {
    let out = run_ok(fhskit(store).args(["store", "verify"]), "verify");
    assert!(out.ends_with(", 0 problems\n"), "{out}");
}

#[test]
fn sigkill_during_add_import_gc_leaves_a_valid_store() {
    let tmp = tempfile::tempdir().unwrap();
    // Both stores hold /nix/store paths (files under their own roots), so one's export imports into the other.
    let root = tmp.path().join("root");
    let store = format!("local?root={}", root.display());
    let src = tmp.path().join("src");
    // An export stream of several paths to import again and again (the collector removes them in between).
    let donor = format!("local?root={}", tmp.path().join("donor").display());
    let mut donor_paths = Vec::new();
    for i in 0..4 {
        let t = src.join(format!("donor{i}"));
        make_tree(&t, 1000 + i, 150);
        donor_paths
            .push(run_ok(fhskit(&donor).args(["store", "add"]).arg(&t), "donor add").trim().to_owned());
    }
    let stream = tmp.path().join("stream.bin");
    let export = wait_bounded(
        fhskit(&donor).args(["store", "export"]).args(&donor_paths).spawn().unwrap(),
        Duration::from_secs(60),
        "export",
    );
    fs::write(&stream, &export.stdout).unwrap();

    let mut rng = Rng::new(0x5eed_f00d_1234_5678);
    let mut killed = 0;
    let iterations = 45;
    for iter in 0..iterations {
        let mut cmd = fhskit(&store);
        match iter % 3 {
            0 => {
                let t = src.join(format!("t{iter}"));
                make_tree(&t, iter, 300);
                cmd.args(["store", "add"]).arg(&t);
            }
            1 => {
                cmd.args(["store", "import"]).stdin(fs::File::open(&stream).unwrap());
            }
            _ => {
                cmd.args(["store", "gc"]);
            }
        }
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.next_u64() % 40_000));
        let _ = child.kill();
        let out = wait_bounded(child, Duration::from_secs(60), "killed child");
        if out.status.signal() == Some(9) {
            killed += 1;
        }
        if iter % 5 == 4 {
            verify_clean(&store);
        }
    }
    assert!(killed >= iterations / 4, "only {killed} of {iterations} children were interrupted");
    verify_clean(&store);
    // A full collection removes every leftover of the interrupted operations.
    run_ok(fhskit(&store).args(["store", "gc"]), "final gc");
    let leftovers: Vec<_> = fs::read_dir(root.join("nix/store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".links")
        .collect();
    assert!(leftovers.is_empty(), "left in the store after gc: {leftovers:?}");
    // The store still works: an import after all that succeeds and verifies.
    let out =
        run_ok(fhskit(&store).args(["store", "import"]).stdin(fs::File::open(&stream).unwrap()), "import");
    assert_eq!(out.lines().count(), donor_paths.len());
    verify_clean(&store);
}

#[test]
fn concurrent_writers_and_collector_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let writers = 3;
    let per_writer = 6;
    let mut trees: Vec<Vec<PathBuf>> = Vec::new();
    for w in 0..writers {
        trees.push(
            (0..per_writer)
                .map(|k| {
                    // Each package's files sit in a directory of its own below a shared one, so the user
                    // environments merge `share/` and have no collisions.
                    let t = tmp.path().join(format!("src/w{w}-pkg{k}"));
                    make_tree(&t.join(format!("share/w{w}-pkg{k}")), w * 100 + k, 60);
                    t
                })
                .collect(),
        );
    }
    // Create the store before the race so all processes open an existing database.
    run_ok(fhskit(&store).args(["store", "gc"]), "initial gc");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || runs < 2 {
                run_ok(fhskit(&store).args(["store", "gc"]), "concurrent gc");
                runs += 1;
            }
            runs
        })
    };
    let handles: Vec<_> = trees
        .iter()
        .enumerate()
        .map(|(w, ts)| {
            let store = store.clone();
            let ts = ts.clone();
            let profile = tmp.path().join(format!("profile-w{w}"));
            std::thread::spawn(move || {
                for t in ts {
                    run_ok(
                        fhskit(&store).args(["profile", "--profile"]).arg(&profile).arg("install").arg(&t),
                        "concurrent install",
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(collector.join().unwrap() >= 2);
    run_ok(fhskit(&store).args(["store", "gc"]), "final gc");
    verify_clean(&store);
    for w in 0..writers {
        let profile = tmp.path().join(format!("profile-w{w}"));
        let gens = run_ok(
            fhskit(&store).args(["profile", "--profile"]).arg(&profile).arg("list-generations"),
            "list",
        );
        assert_eq!(gens.lines().count(), per_writer, "{gens}");
        // Every generation and everything it refers to survived the collections.
        for n in 1..=per_writer {
            let link = tmp.path().join(format!("profile-w{w}-{n}-link"));
            let env = fs::read_link(&link).unwrap();
            let closure = run_ok(fhskit(&store).args(["store", "closure"]).arg(&env), "closure");
            for k in 0..n {
                assert!(
                    closure.contains(&format!("-w{w}-pkg{k}\n")),
                    "generation {n} of writer {w} lost pkg{k}"
                );
            }
        }
    }
}
