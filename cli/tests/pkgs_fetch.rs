//! End-to-end tests of `fhskit pkgs fetch`: parallel verified downloads into the content cache, unpacking `.deb`
//! files in Rust (xz, zstd and gzip members, symlinks, hard links), running the unpacked program, resuming an
//! interrupted download, refusing mismatching or hostile packages without unpacking anything, copying packages
//! from the host's dpkg database, and waiting for a concurrent process's lock.

mod pkgs_support;

use std::path::Path;
use std::process::Command;

use pkgs_support::*;

fn updated() -> Fixture {
    let f = Fixture::new();
    f.ok(&["pkgs", "update"]);
    f
}

fn cached_debs(f: &Fixture) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(f.path("cache/fhskit/debs"))
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn fetch_unpacks_a_closure_that_runs() {
    let f = updated();
    let out = f.ok(&["pkgs", "fetch", "hello-foo", "--into", "root"]);
    let root = f.path("work/root");
    assert!(
        out.contains(&format!("hello-foo:amd64 1.0-1 {}", root.join("hello-foo-1.0-1").display())),
        "{out}"
    );
    let hello = root.join("hello-foo-1.0-1/usr/bin/hello-foo");
    let lib = root.join("libfoo1-1.0-1/usr/lib/x86_64-linux-gnu");
    assert!(lib.join("libfoo.so.1").is_symlink());
    assert_eq!(std::fs::read_link(lib.join("libfoo.so.1")).unwrap(), Path::new("libfoo.so.1.0.0"));
    assert!(root.join("hello-foo-1.0-1/usr/bin/hello-foo-again").is_file(), "hard link unpacked");
    assert!(
        std::fs::read_to_string(root.join("libfoo1-1.0-1/DEBIAN/control"))
            .unwrap()
            .contains("Package: libfoo1")
    );
    assert!(
        std::fs::read_to_string(root.join("libfoo1-1.0-1/DEBIAN/shlibs"))
            .unwrap()
            .contains("libfoo 1 libfoo1")
    );
    assert!(root.join("libc-fixture-2.1/usr/share/doc/libc-fixture/README").is_file(), "zstd member");
    let run = Command::new(&hello).env("LD_LIBRARY_PATH", &lib).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello-foo: 42\n",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Without the library the program does not run: the package supplied it.
    let bare = Command::new(&hello).env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert!(!bare.status.success());
    assert_eq!(cached_debs(&f).len(), 5);

    // The i386 library (gzip members) and --download-only.
    let out = f.ok(&["pkgs", "fetch", "libfoo1:i386", "--into", "root32"]);
    assert!(out.contains("libfoo1:i386 1.0-1"), "{out}");
    assert!(f.path("work/root32/libfoo1-1.0-1-i386/usr/lib/i386-linux-gnu/libfoo.so.1.0.0").is_file());
    let out = f.ok(&["pkgs", "fetch", "mta-fixture", "--download-only"]);
    assert!(out.contains(&format!("{}.deb", f.pool["mta-fixture:amd64"].2)), "{out}");
}

#[test]
fn fetch_into_another_file_system_copies_the_trees() {
    use std::os::unix::fs::MetadataExt;
    let f = updated();
    // /dev/shm is a tmpfs on Linux; skip where it is missing or shares the cache's file system.
    let shm = Path::new("/dev/shm");
    let cache_dev = std::fs::metadata(f.path("cache")).unwrap().dev();
    if !shm.is_dir() || std::fs::metadata(shm).unwrap().dev() == cache_dev {
        test_support::unmet(format!("no /dev/shm on another file system than {}", f.path("cache").display()));
        return;
    }
    let into = tempfile::tempdir_in(shm).unwrap();
    let root = into.path().join("root");
    let out = f.ok(&["pkgs", "fetch", "hello-foo", "--into", root.to_str().unwrap()]);
    assert!(out.contains(&root.join("hello-foo-1.0-1").display().to_string()), "{out}");
    let lib = root.join("libfoo1-1.0-1/usr/lib/x86_64-linux-gnu");
    assert_eq!(std::fs::read_link(lib.join("libfoo.so.1")).unwrap(), Path::new("libfoo.so.1.0.0"));
    // Permissions survive the copy (not run: /dev/shm may be mounted noexec).
    let hello = std::fs::metadata(root.join("hello-foo-1.0-1/usr/bin/hello-foo")).unwrap();
    assert_eq!(hello.mode() & 0o777, 0o755);
    let names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with('.')), "no temporary copy left: {names:?}");
}

#[test]
fn fetch_from_the_lock_file_reuses_the_cache() {
    let f = updated();
    f.ok(&["pkgs", "resolve", "hello-foo"]);
    f.ok(&["pkgs", "fetch", "--into", "a"]);
    f.server.clear_log();
    f.ok(&["pkgs", "fetch", "--lock", "fhskit.lock", "--into", "b", "--json"]);
    assert!(f.server.requests().is_empty(), "verified cache entries are reused: {:?}", f.server.requests());
    assert!(f.path("work/b/hello-foo-1.0-1/usr/bin/hello-foo").is_file());
    // A corrupted cache entry is detected and fetched again.
    let sha = &f.pool["libfoo1:amd64"].2;
    std::fs::write(f.path(&format!("cache/fhskit/debs/{sha}.deb")), b"corrupt").unwrap();
    f.ok(&["pkgs", "fetch", "--into", "c"]);
    assert!(f.server.requests().iter().any(|r| r.path.ends_with("libfoo1_1.0-1_amd64.deb")));
    let err = f.fails(&["pkgs", "fetch", "--lock", "missing.lock", "--into", "d"]);
    assert!(err.contains("missing.lock") && err.contains("hint:"), "{err}");
}

#[test]
fn mismatching_or_failing_downloads_unpack_nothing() {
    let f = updated();
    let deb = f.deb_path("libfoo1:amd64");
    let size = f.pool["libfoo1:amd64"].1 as usize;
    // Same size, different bytes.
    f.server.fault(&deb, Fault::Body(vec![b'x'; size]));
    let err = f.fails(&["pkgs", "fetch", "libfoo1", "--into", "root"]);
    assert!(err.contains(".deb") && err.contains("does not match the release file"), "{err}");
    assert!(!f.path("work/root").exists());
    assert!(
        !cached_debs(&f).iter().any(|d| d.starts_with(&f.pool["libfoo1:amd64"].2)),
        "{:?}",
        cached_debs(&f)
    );
    // Server error.
    f.server.fault(&deb, Fault::Status(500));
    let err = f.fails(&["pkgs", "fetch", "libfoo1", "--into", "root"]);
    assert!(err.contains("server answered 500"), "{err}");
    assert!(!f.path("work/root").exists());
    // Larger than the index says.
    f.server.fault(&deb, Fault::Body(vec![b'x'; size + 10]));
    let err = f.fails(&["pkgs", "fetch", "libfoo1", "--into", "root"]);
    assert!(err.contains("more than"), "{err}");
    assert!(!f.path("work/root").exists());
}

#[test]
fn interrupted_downloads_resume() {
    let f = updated();
    let deb = f.deb_path("hello-foo:amd64");
    f.server.fault(&deb, Fault::Truncate(1000));
    let err = f.fails(&["pkgs", "fetch", "hello-foo", "--into", "root"]);
    assert!(err.contains("hello-foo_1.0-1_amd64.deb"), "{err}");
    assert!(!f.path("work/root").exists(), "nothing unpacked after a failed fetch");
    let part = f.path(&format!("cache/fhskit/debs/{}.deb.part", f.pool["hello-foo:amd64"].2));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 1000);
    f.server.clear_faults();
    f.server.clear_log();
    f.ok(&["pkgs", "fetch", "hello-foo", "--into", "root"]);
    let resumed = f.server.requests().into_iter().find(|r| r.path == deb).unwrap();
    assert_eq!(resumed.headers.get("range").map(String::as_str), Some("bytes=1000-"));
    assert_eq!(resumed.status, 206);
    assert!(!part.exists());
    let run = Command::new(f.path("work/root/hello-foo-1.0-1/usr/bin/hello-foo"))
        .env("LD_LIBRARY_PATH", f.path("work/root/libfoo1-1.0-1/usr/lib/x86_64-linux-gnu"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello-foo: 42\n");
}

#[test]
fn hostile_packages_are_refused() {
    let f = updated();
    for (pkg, want) in [
        ("evil-dotdot", "escapes the package root"),
        ("evil-absolute", "absolute path"),
        ("evil-symlink", "points outside the package"),
        ("evil-through", "through a non-directory"),
    ] {
        let err = f.fails(&["pkgs", "fetch", pkg, "--into", "root"]);
        assert!(err.contains("unsafe .deb") && err.contains(want), "{pkg}: {err}");
        assert!(!f.path("work/root").exists(), "{pkg}");
    }
    assert!(!Path::new("/tmp/fhskit-absolute-escape").exists());
    assert!(!Path::new("/tmp/fhskit-through-escape").exists());
    assert!(!f.path("cache/escaped").exists() && !f.path("cache/fhskit/escaped").exists());
    let leftovers: Vec<_> = std::fs::read_dir(f.path("cache/fhskit/tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "scratch directories are cleaned up");
}

#[test]
fn host_packages_are_copied_when_the_version_matches() {
    let f = updated();
    // A fake host with libfoo1 1.0-1 installed, files verified against its md5sums.
    let host = f.path("hostroot");
    let libdir = host.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::create_dir_all(host.join("var/lib/dpkg/info")).unwrap();
    let lib = b"host copy of libfoo";
    std::fs::write(libdir.join("libfoo.so.1.0.0"), lib).unwrap();
    std::os::unix::fs::symlink("libfoo.so.1.0.0", libdir.join("libfoo.so.1")).unwrap();
    std::fs::write(
        host.join("var/lib/dpkg/status"),
        "Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 1.0-1\n\n\
         Package: libc-fixture\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.9\n",
    )
    .unwrap();
    std::fs::write(
        host.join("var/lib/dpkg/info/libfoo1:amd64.list"),
        "/.\n/usr\n/usr/lib\n/usr/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu/libfoo.so.1.0.0\n/usr/lib/x86_64-linux-gnu/libfoo.so.1\n",
    )
    .unwrap();
    let md5: String = {
        use md5::Digest;
        md5::Md5::digest(lib).iter().map(|b| format!("{b:02x}")).collect()
    };
    std::fs::write(
        host.join("var/lib/dpkg/info/libfoo1:amd64.md5sums"),
        format!("{md5}  usr/lib/x86_64-linux-gnu/libfoo.so.1.0.0\n"),
    )
    .unwrap();
    // The repository copy is unreachable: only the host can supply libfoo1.
    f.server.fault(&f.deb_path("libfoo1:amd64"), Fault::Status(503));
    let out = f.ok(&["pkgs", "fetch", "libfoo1", "--into", "root"]);
    assert!(out.contains("libfoo1:amd64 1.0-1") && out.contains("(from host)"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("libc-fixture:amd64 2.1 ") && !l.contains("from host")),
        "{out}"
    );
    assert_eq!(
        std::fs::read(f.path("work/root/libfoo1-1.0-1/usr/lib/x86_64-linux-gnu/libfoo.so.1.0.0")).unwrap(),
        lib
    );
    // --no-host downloads instead (and fails here, since the repository copy is unreachable).
    let err = f.fails(&["pkgs", "fetch", "libfoo1", "--into", "root2", "--no-host"]);
    assert!(err.contains("503"), "{err}");
    // A modified host file is not trusted.
    std::fs::write(libdir.join("libfoo.so.1.0.0"), b"tampered on the host").unwrap();
    let err = f.fails(&["pkgs", "fetch", "libfoo1", "--into", "root3"]);
    assert!(err.contains("503"), "falls back to downloading: {err}");
    f.server.clear_faults();
    let out = f.ok(&["pkgs", "fetch", "libfoo1", "--into", "root4"]);
    assert!(!out.contains("from host"), "{out}");
}

#[test]
fn a_second_process_waits_for_the_cache_lock() {
    let f = updated();
    let lock = std::fs::File::options().write(true).open(f.path("cache/fhskit/lock")).unwrap();
    lock.lock().unwrap();
    let mut c = f.command();
    c.args(["pkgs", "fetch", "libfoo1", "--into", "root", "--repo", &f.spec()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "fetch must wait while another process holds the lock");
    assert!(!f.path("work/root").exists());
    lock.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting for another fhskit process"));
    assert!(f.path("work/root/libfoo1-1.0-1").is_dir());
}

#[test]
fn fetch_adds_packages_to_the_store_with_references_and_roots() {
    let f = updated();
    let out = f.ok(&["pkgs", "fetch", "hello-foo", "--add-root", "roots"]);
    let line = |pkg: &str| -> String {
        let l = out.lines().find(|l| l.starts_with(pkg)).unwrap_or_else(|| panic!("{pkg}: {out}"));
        l.split(' ').nth(2).unwrap().to_owned()
    };
    let hello = line("hello-foo:amd64");
    let libfoo = line("libfoo1:amd64");
    let store = f.path("store/store");
    assert!(Path::new(&hello).starts_with(&store), "{out}");
    assert!(hello.ends_with("-hello-foo-1.0-1"), "{hello}");
    // Unpacked inside the store and moved into place: no scratch or staging directory is left behind.
    let leftovers: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A hostile package fails after others were prepared: nothing of it or them stays in the store.
    let before = std::fs::read_dir(&store).unwrap().count();
    let err = f.fails(&["pkgs", "fetch", "evil-dotdot", "libc-fixture"]);
    assert!(err.contains("unsafe .deb"), "{err}");
    assert_eq!(std::fs::read_dir(&store).unwrap().count(), before);
    // The package references the store paths of its dependencies, and the store's files run.
    let store_cmd = |args: &[&str]| {
        let out = f.command().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let refs = store_cmd(&["store", "path-info", &hello, "--json"]);
    assert!(refs.contains(&libfoo), "{refs}");
    let run = Command::new(Path::new(&hello).join("usr/bin/hello-foo"))
        .env("LD_LIBRARY_PATH", Path::new(&libfoo).join("usr/lib/x86_64-linux-gnu"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello-foo: 42\n");
    // The roots keep the closure alive through a collection.
    assert!(f.path("work/roots/hello-foo-1.0-1").is_symlink());
    store_cmd(&["store", "gc"]);
    assert!(Path::new(&hello).is_dir() && Path::new(&libfoo).is_dir());
    std::fs::remove_dir_all(f.path("work/roots")).unwrap();
    store_cmd(&["store", "gc"]);
    assert!(!Path::new(&hello).exists(), "unrooted packages are collected");
}
