//! `fhskit run` realising a closure from a signed apt repository served on 127.0.0.1 by this test, inside the
//! NixOS-like harness (host libraries hidden, fhskit running from a store path it patched for itself): nothing is
//! cached beforehand and the host's dpkg database is not used, so every library comes from the repository.
//! The repository holds real Debian packages re-packed from this host (`tests/fixtures/run-repo.sh`), or packages
//! built by the test (`tests/fixtures/pkgs-repo.rs`).

mod run_support;

#[path = "../../tests/fixtures/pkgs-repo.rs"]
mod fixture_repo;

use std::path::PathBuf;

use run_support::{Harness, World, fixtures, ok, text};
use test_support::http::Server;

fn build_repo(world: &World, packages: &[&str]) -> PathBuf {
    let out = world.path("fixture-repo");
    let o = std::process::Command::new("sh")
        .arg(fixtures().join("run-repo.sh"))
        .arg(&out)
        .args(packages)
        .output()
        .unwrap();
    assert!(o.status.success(), "building the repository failed:\n{}", text(&o));
    out.join("repo")
}

#[test]
fn closure_realised_from_a_local_repository_inside_the_harness() {
    let world = World::new();
    let harness = Harness::new(&world);
    let repo = build_repo(&world, &["zlib1g", "liblzma5", "liblz4-1"]);
    let server = Server::files(repo.clone());
    let port = server.port();
    let spec = format!(
        "[signed-by={} arch=amd64] http://127.0.0.1:{port}/ testing main",
        repo.join("key.gpg").display()
    );
    ok(&world.fhskit(&["pkgs", "update", "--repo", &spec]));
    let zstd = world.unpack_host_package("zstd", &world.path("zstd-pkg")).join("usr/bin/zstd");
    let zstd = zstd.to_str().unwrap();
    for strategy in ["shim", "patch", "fhs"] {
        let o = harness.run(
            &world,
            &[
                &harness.fhskit,
                "-v",
                "run",
                "--no-host",
                "--repo",
                &spec,
                "--strategy",
                strategy,
                zstd,
                "--version",
            ],
        );
        assert!(ok(&o).contains("Zstandard CLI"), "{strategy}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        for want in ["liblzma5:amd64", "zlib1g:amd64", "liblz4-1:amd64", "libc6:amd64", "from repository"] {
            assert!(err.contains(want), "{strategy}: missing {want} in\n{err}");
        }
        assert!(!err.contains("from host"), "{err}");
    }
}

#[test]
fn a_soname_no_repository_package_ships_is_reported_before_running() {
    let world = World::new();
    // The repository was consulted (libc6 comes from the host, the rest is looked up in the index) and the
    // unknown soname is named with the reason, before the program runs.
    let repo = build_repo(&world, &["zlib1g"]);
    let server = Server::files(repo.clone());
    let port = server.port();
    let spec = format!(
        "[signed-by={} arch=amd64] http://127.0.0.1:{port}/ testing main",
        repo.join("key.gpg").display()
    );
    let lib = world.path("gone/libfhskitgone.so.3");
    world.cc(&lib, &["run-missing-lib.c"], &["-shared", "-fPIC", "-Wl,-soname,libfhskitgone.so.3"]);
    let prog = world.path("needs-gone");
    world.cc(
        &prog,
        &["run-missing.c"],
        &[&format!("-L{}", lib.parent().unwrap().display()), "-l:libfhskitgone.so.3"],
    );
    std::fs::remove_dir_all(world.path("gone")).unwrap();
    // Before any `pkgs update`, the cause is that the index was never downloaded, and the hint says what to run.
    let o = world.fhskit(&["run", "--no-host", "--repo", &spec, prog.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("was never downloaded") && err.contains("hint: run `fhskit pkgs update`"), "{err}");
    assert!(!err.contains("--ignore-missing"), "run has no --ignore-missing: {err}");
    // Offline, the cause is that repositories were not to be used.
    let o = world.fhskit(&["run", "--offline", prog.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--offline") && err.contains("libfhskitgone.so.3"), "{err}");
    ok(&world.fhskit(&["pkgs", "update", "--repo", &spec]));
    let o = world.fhskit(&["run", "--repo", &spec, prog.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("libfhskitgone.so.3")
            && err.contains("no package in the configured repositories ships it"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "{}", text(&o));
}

#[test]
fn a_launcher_script_gets_its_shell_and_tools_from_the_repository() {
    // As on NixOS: no dpkg database to find /bin/sh or dirname in; the repository's Contents index names their
    // packages (dash, coreutils), which the FHS env then holds.
    let world = World::new();
    let harness = Harness::new(&world);
    let repo = build_repo(&world, &["zlib1g", "dash", "coreutils"]);
    let server = Server::files(repo.clone());
    let port = server.port();
    let spec = format!(
        "[signed-by={} arch=amd64] http://127.0.0.1:{port}/ testing main",
        repo.join("key.gpg").display()
    );
    ok(&world.fhskit(&["pkgs", "update", "--repo", &spec]));
    let app = world.path("app");
    world.cc(
        &app.join("lib/libappgreet.so.1"),
        &["run-greet.c"],
        &["-shared", "-fPIC", "-Wl,-soname,libappgreet.so.1", "-l:libz.so.1"],
    );
    world.cc(
        &app.join("bin/app"),
        &["run-app.c"],
        &[&format!("-L{}", app.join("lib").display()), "-l:libappgreet.so.1", "-Wl,-rpath,$ORIGIN/../lib"],
    );
    run_support::copy(&fixtures().join("run-launcher.sh"), &app.join("run.sh"));
    std::fs::set_permissions(app.join("run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let script = app.join("run.sh").display().to_string();
    let o = harness.run(&world, &[&harness.fhskit, "-v", "run", "--no-host", "--repo", &spec, &script, "zz"]);
    assert!(ok(&o).contains("crc32(zz) = 618208161"), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "with the fhs strategy",
        "dash:amd64",
        "/bin/sh",
        "coreutils:amd64",
        "command dirname",
        "from repository",
    ] {
        assert!(err.contains(want), "missing {want} in\n{err}");
    }
    // patch and shim cannot run a script, and say so.
    for strategy in ["patch", "shim"] {
        let o = world.fhskit(&["run", "--no-host", "--repo", &spec, "--strategy", strategy, &script]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("is a launcher script"), "{}", text(&o));
    }
}

#[test]
fn a_repository_library_with_its_own_runpath_finds_its_needs_in_every_strategy() {
    // Debian's libLLVM carries DT_RUNPATH=$ORIGIN/../lib and needs libedit from another package: under the patch
    // strategy glibc then ignores the executable's run path for libLLVM's own needs. Here a packaged library with
    // such a run path needs the host's libz; the program runs in the harness, where nothing else provides it.
    let world = World::new();
    let harness = Harness::new(&world);
    let build = world.path("build");
    world.cc(
        &build.join("libappgreet.so.1"),
        &["run-greet.c"],
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libappgreet.so.1",
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--enable-new-dtags",
            "-l:libz.so.1",
        ],
    );
    let prog = world.path("prog/app");
    world.cc(&prog, &["run-app.c"], &[&format!("-L{}", build.display()), "-l:libappgreet.so.1"]);
    let lib = std::fs::read(build.join("libappgreet.so.1")).unwrap();
    let deb = fixture_repo::Deb::new("libappgreet1", "1.0-1", "amd64")
        .section("libs")
        .dir("./usr")
        .dir("./usr/lib")
        .dir("./usr/lib/x86_64-linux-gnu")
        .file("./usr/lib/x86_64-linux-gnu/libappgreet.so.1", &lib, 0o644);
    let key = fixture_repo::ed25519_key(7);
    let repo = world.path("greet-repo");
    let opts = fixture_repo::RepoOptions { architectures: vec!["amd64".into()], ..Default::default() };
    fixture_repo::write_repo(&repo, &[deb], &key, &opts);
    let keyring = world.path("greet-key.gpg");
    std::fs::write(&keyring, &key.public_gpg).unwrap();
    let server = Server::files(repo);
    let port = server.port();
    let spec = format!("[signed-by={} arch=amd64] http://127.0.0.1:{port}/ testing main", keyring.display());
    ok(&world.fhskit(&["pkgs", "update", "--repo", &spec]));
    let prog = prog.to_str().unwrap();
    for strategy in ["patch", "shim", "fhs", "auto"] {
        // Prepared with the host visible (libc and libz from its dpkg database, the library from the repository).
        let o = world.fhskit(&["-v", "run", "--repo", &spec, "--strategy", strategy, prog, "zz"]);
        assert!(ok(&o).contains("crc32(zz) = 618208161"), "{strategy}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("libappgreet1:amd64"), "{strategy}: {err}");
        let o = harness
            .run(&world, &[&harness.fhskit, "run", "--repo", &spec, "--strategy", strategy, prog, "zz"]);
        assert!(ok(&o).contains("crc32(zz) = 618208161"), "{strategy} in the harness: {}", text(&o));
    }
}
