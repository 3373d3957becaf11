//! `fhskit run` end to end in a NixOS-like harness: the host's `/lib*` and `/usr/lib*` are empty and `/usr/bin`
//! holds only `env`, and fhskit itself runs from a store path it patched for itself. A real program from a Debian
//! package (zstd, unpacked without its dependencies, not built by us) fails to run directly there and runs with
//! each strategy; so do a bundled-library application using `$ORIGIN`, its shell-script launcher and a 32-bit
//! program. The closures are realised from the host's dpkg database before the host is hidden (no network);
//! inside, only the store is left, so a program that runs proves its closure is complete.

mod run_support;

use run_support::{Harness, World, ok, text};

/// The zstd binary of the host's `zstd` package, copied out alone.
fn zstd(world: &World) -> String {
    let dir = world.unpack_host_package("zstd", &world.path("zstd-pkg"));
    dir.join("usr/bin/zstd").display().to_string()
}

#[test]
fn real_debian_program_runs_with_each_strategy_where_host_libraries_are_hidden() {
    let world = World::new();
    let harness = Harness::new(&world);
    let zstd = zstd(&world);
    // Prepare each strategy with the host visible (realised from its dpkg database, offline).
    for strategy in ["patch", "shim", "fhs"] {
        let o = world.fhskit(&["run", "--offline", "--strategy", strategy, &zstd, "--version"]);
        assert!(ok(&o).contains("Zstandard CLI"), "{strategy}: {}", text(&o));
    }
    // In the harness the program cannot start by itself: its loader is gone.
    let direct = harness.run(&world, &[&zstd, "--version"]);
    assert!(!direct.status.success(), "zstd ran without its libraries:\n{}", text(&direct));
    for strategy in ["patch", "shim", "fhs"] {
        let o = harness
            .run(&world, &[&harness.fhskit, "run", "--offline", "--strategy", strategy, &zstd, "--version"]);
        assert!(ok(&o).contains("Zstandard CLI"), "{strategy} in the harness: {}", text(&o));
    }
    // The same program compresses and decompresses for real through the cached plan.
    let input = world.path("input.txt");
    std::fs::write(&input, "fhskit ".repeat(1000)).unwrap();
    let o = harness.run(
        &world,
        &[
            &harness.fhskit,
            "run",
            "--offline",
            "--strategy",
            "shim",
            &zstd,
            "-q",
            "-f",
            input.to_str().unwrap(),
        ],
    );
    ok(&o);
    let o = harness.run(
        &world,
        &[
            &harness.fhskit,
            "run",
            "--offline",
            "--strategy",
            "shim",
            &zstd,
            "-q",
            "-t",
            &format!("{}.zst", input.display()),
        ],
    );
    ok(&o);
}

#[test]
fn auto_says_which_strategy_and_verbose_says_what_was_used() {
    let world = World::new();
    let zstd = zstd(&world);
    let o = world.fhskit(&["run", "--offline", &zstd, "--version"]);
    assert!(ok(&o).contains("Zstandard CLI"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("with the shim strategy"), "{err}");
    let o = world.fhskit(&["-v", "run", "--offline", "--refresh", &zstd, "--version"]);
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "liblzma5:amd64",
        "liblzma.so.5",
        "zlib1g:amd64",
        "libz.so.1",
        "liblz4-1:amd64",
        "libc6:amd64",
        "from host",
    ] {
        assert!(err.contains(want), "missing {want} in:\n{err}");
    }
    // From the cached plan, a global option after `run` is still read (the cached start's own parser leaves such
    // command lines to the full one).
    let o = world.fhskit(&["run", "-v", "--offline", &zstd, "--version"]);
    assert!(ok(&o).contains("Zstandard CLI"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("liblzma5:amd64") && err.contains("from host"), "{err}");
}

#[test]
fn bundled_application_and_its_launcher_script_run_in_the_harness() {
    let world = World::new();
    let harness = Harness::new(&world);
    let app = world.path("app");
    world.cc(
        &app.join("lib/libappgreet.so.1"),
        &["run-greet.c"],
        &["-shared", "-fPIC", "-Wl,-soname,libappgreet.so.1", "-l:libz.so.1"],
    );
    world.cc(
        &app.join("bin/app"),
        &["run-app.c"],
        &[
            &format!("-L{}", app.join("lib").display()),
            "-l:libappgreet.so.1",
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--disable-new-dtags",
        ],
    );
    run_support::copy(&run_support::fixtures().join("run-launcher.sh"), &app.join("run.sh"));
    std::fs::set_permissions(app.join("run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let bin = app.join("bin/app").display().to_string();
    let script = app.join("run.sh").display().to_string();
    // auto treats an $ORIGIN bundle as an application that may find files beside itself.
    let o = world.fhskit(&["-v", "run", "--offline", &bin, "zz"]);
    let out = ok(&o);
    assert!(out.contains("hello from the bundled library; crc32(zz) = 618208161"), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bundled libappgreet.so.1"), "{err}");
    assert!(
        err.contains("zlib1g:amd64") && err.contains("libz.so.1"),
        "the bundled library's own need: {err}"
    );
    assert!(!err.contains("libappgreet1"), "a bundled library must not be looked up in packages: {err}");
    for strategy in ["patch", "shim", "fhs"] {
        let o = world.fhskit(&["run", "--offline", "--strategy", strategy, &bin, "zz"]);
        assert!(ok(&o).contains("crc32(zz) = 618208161"), "{strategy}: {}", text(&o));
    }
    // The launcher script is followed to bin/app and run in an FHS env with the script's own shell and tools.
    let o = world.fhskit(&["run", "--offline", &script, "zz"]);
    assert!(ok(&o).contains("crc32(zz) = 618208161"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("with the fhs strategy"), "{}", text(&o));
    let o = world.fhskit(&["run", "--offline", "--strategy", "shim", &script]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("launcher script"),
        "{}",
        text(&o)
    );
    for args in [
        vec!["--strategy", "patch", bin.as_str(), "zz"],
        vec!["--strategy", "fhs", bin.as_str(), "zz"],
        vec![script.as_str(), "zz"],
    ] {
        let mut full = vec![harness.fhskit.as_str(), "run", "--offline"];
        full.extend(args.iter().copied());
        let o = harness.run(&world, &full);
        assert!(ok(&o).contains("crc32(zz) = 618208161"), "{args:?} in the harness: {}", text(&o));
    }
}

#[test]
fn programs_that_reexecute_themselves_work_with_every_strategy() {
    let world = World::new();
    let harness = Harness::new(&world);
    // In a directory of its own: the patch strategy mirrors the program's directory.
    let prog = world.path("reexec/run-reexec");
    world.cc(&prog, &["run-reexec.c"], &[]);
    let prog = prog.display().to_string();
    for strategy in ["auto", "patch", "shim", "fhs"] {
        let o = world.fhskit(&["run", "--offline", "--strategy", strategy, &prog]);
        let out = ok(&o);
        assert!(
            out.contains("child ok: token") && out.contains("re-executed itself"),
            "{strategy}: {}",
            text(&o)
        );
        let o = harness.run(&world, &[&harness.fhskit, "run", "--offline", "--strategy", strategy, &prog]);
        let out = ok(&o);
        assert!(
            out.contains("child ok: token") && out.contains("re-executed itself"),
            "{strategy}: {}",
            text(&o)
        );
    }
}

/// A program reached through a symlink, as Debian installs many (`usr/bin/plink1.9 -> ../lib/debian-med/bin/…`):
/// the patch strategy patches a copy of the file the link names and never the file itself, so the other strategies
/// (and the program run directly) still see the untouched program.
#[test]
fn a_symlinked_program_is_patched_as_a_copy_and_the_original_is_left_alone() {
    let world = World::new();
    let harness = Harness::new(&world);
    let dir = world.unpack_host_package("zstd", &world.path("zstd-linked"));
    let real = dir.join("usr/lib/zstd-real/bin/zstd");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::rename(dir.join("usr/bin/zstd"), &real).unwrap();
    std::os::unix::fs::symlink("../lib/zstd-real/bin/zstd", dir.join("usr/bin/zstd")).unwrap();
    // And through a symlinked directory.
    std::os::unix::fs::symlink("lib/zstd-real/bin", dir.join("usr/rbin")).unwrap();
    let before = std::fs::read(&real).unwrap();
    for link in ["usr/bin/zstd", "usr/rbin/zstd"] {
        let link = dir.join(link).display().to_string();
        let o = world.fhskit(&["run", "--offline", "--strategy", "patch", &link, "--version"]);
        assert!(ok(&o).contains("Zstandard CLI"), "{link}: {}", text(&o));
        assert!(
            std::fs::read(&real).unwrap() == before,
            "the patch strategy wrote to {} through {link}",
            real.display()
        );
        let o = harness
            .run(&world, &[&harness.fhskit, "run", "--offline", "--strategy", "patch", &link, "--version"]);
        assert!(ok(&o).contains("Zstandard CLI"), "{link} in the harness: {}", text(&o));
    }
    // The program itself still needs the host's loader: it fails where the host is hidden, and the shim strategy
    // realises its own closure for it.
    let link = dir.join("usr/bin/zstd").display().to_string();
    let direct = harness.run(&world, &[&link, "--version"]);
    assert!(!direct.status.success(), "the original was changed to run without the host:\n{}", text(&direct));
    let o = world.fhskit(&["run", "--offline", "--strategy", "shim", &link, "--version"]);
    assert!(ok(&o).contains("Zstandard CLI"), "shim: {}", text(&o));
}

#[test]
fn a_bundle_whose_libraries_have_their_own_runpath_runs_patched() {
    // Qt, Electron and most commercial bundles: every object carries DT_RUNPATH=$ORIGIN…, and glibc then ignores the
    // executable's run path for that object's own needs (here libz), so each object must be patched.
    let world = World::new();
    let harness = Harness::new(&world);
    let app = world.path("bundle");
    world.cc(
        &app.join("lib/libappgreet.so.1"),
        &["run-greet.c"],
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libappgreet.so.1",
            "-Wl,-rpath,$ORIGIN",
            "-Wl,--enable-new-dtags",
            "-l:libz.so.1",
        ],
    );
    world.cc(
        &app.join("bin/app"),
        &["run-app.c"],
        &[
            &format!("-L{}", app.join("lib").display()),
            "-l:libappgreet.so.1",
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--enable-new-dtags",
        ],
    );
    let bin = app.join("bin/app").display().to_string();
    for strategy in ["patch", "shim", "fhs", "auto"] {
        let o = world.fhskit(&["-v", "run", "--offline", "--strategy", strategy, &bin, "zz"]);
        assert!(ok(&o).contains("crc32(zz) = 618208161"), "{strategy}: {}", text(&o));
        if strategy == "patch" {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("patched: ") && err.contains("libappgreet.so.1"), "{err}");
        }
        let o =
            harness.run(&world, &[&harness.fhskit, "run", "--offline", "--strategy", strategy, &bin, "zz"]);
        assert!(ok(&o).contains("crc32(zz) = 618208161"), "{strategy} in the harness: {}", text(&o));
    }
}

#[test]
fn thirty_two_bit_program_gets_the_32_bit_loader_and_libc() {
    let world = World::new();
    let harness = Harness::new(&world);
    let hello = world.path("hello32");
    world.cc(&hello, &["run-hello32.c"], &["-m32"]);
    let hello = hello.display().to_string();
    for strategy in ["patch", "shim", "fhs"] {
        let o = world.fhskit(&["-v", "run", "--offline", "--strategy", strategy, &hello]);
        assert!(ok(&o).contains("hello from 32-bit code"), "{strategy}: {}", text(&o));
        // libc6-i386 (the biarch package) or libc6:i386 (multiarch), whichever the host has.
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("libc6-i386") || err.contains("libc6:i386"), "{}", text(&o));
        let o = harness.run(&world, &[&harness.fhskit, "run", "--offline", "--strategy", strategy, &hello]);
        assert!(ok(&o).contains("hello from 32-bit code"), "{strategy} in the harness: {}", text(&o));
    }
}

#[test]
fn a_missing_library_is_reported_by_name_before_anything_runs() {
    let world = World::new();
    let lib = world.path("gone/libfhskitgone.so.3");
    world.cc(&lib, &["run-missing-lib.c"], &["-shared", "-fPIC", "-Wl,-soname,libfhskitgone.so.3"]);
    let prog = world.path("needs-gone");
    world.cc(
        &prog,
        &["run-missing.c"],
        &[&format!("-L{}", lib.parent().unwrap().display()), "-l:libfhskitgone.so.3"],
    );
    std::fs::remove_dir_all(world.path("gone")).unwrap();
    for strategy in ["auto", "patch", "shim", "fhs"] {
        let o = world.fhskit(&["run", "--offline", "--strategy", strategy, prog.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(o.stdout.is_empty(), "the program ran: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("libfhskitgone.so.3") && err.contains(prog.to_str().unwrap()), "{err}");
    }
    let o = world.fhskit(&["run", "--offline", world.path("no-such-file").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-file"), "{}", text(&o));
}
