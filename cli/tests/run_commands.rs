//! `fhskit patch`, `generate` and `steam-run` end to end. Closures come from the host's dpkg database (offline);
//! every result is run, most of them in the NixOS-like harness (`run_support::Harness`) where the host's libraries
//! are hidden, so a program that runs there proves it uses the store and nothing else.

mod run_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use run_support::{Harness, World, ok, text};

/// The host's zstd, copied out alone.
fn zstd(world: &World) -> String {
    let dir = world.unpack_host_package("zstd", &world.path("zstd-pkg"));
    dir.join("usr/bin/zstd").display().to_string()
}

fn store_paths(world: &World) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(world.path("store/store"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn patch_into_the_store_out_dir_and_in_place() {
    let world = World::new();
    let harness = Harness::new(&world);
    let zstd = zstd(&world);

    // Into the store: one path, printed, with a ./result root; it runs with the host hidden.
    let out = ok(&world.fhskit(&["patch", "--offline", &zstd]));
    let path = out.trim();
    assert!(
        path.starts_with(world.path("store/store").to_str().unwrap()) && path.ends_with("-zstd-patched"),
        "{out}"
    );
    let result = std::fs::read_link(world.path("result")).unwrap();
    assert_eq!(result, Path::new(path));
    let patched = format!("{path}/bin/zstd");
    let o = harness.run(&world, &[&patched, "--version"]);
    assert!(ok(&o).contains("Zstandard CLI"), "{}", text(&o));
    // The store path refers to the packages it needs, so they live as long as it does.
    let info = ok(&world.fhskit(&["store", "path-info", "--json", path]));
    for dep in ["libc6-", "liblzma5-", "zlib1g-", "liblz4-1-"] {
        assert!(info.contains(dep), "missing reference to {dep}: {info}");
    }
    // The original file is untouched.
    let interp = std::process::Command::new(run_support::FHSKIT)
        .args(["patchelf", "--print-interpreter", &zstd])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&interp.stdout).trim(), "/lib64/ld-linux-x86-64.so.2");

    // --out: a copy elsewhere, still running on the closure alone.
    let dir = world.path("fixed");
    ok(&world.fhskit(&["patch", "--offline", "--out", dir.to_str().unwrap(), &zstd]));
    let o = harness.run(&world, &[dir.join("zstd").to_str().unwrap(), "--version"]);
    assert!(ok(&o).contains("Zstandard CLI"), "{}", text(&o));

    // --in-place rewrites the file itself, keeping its mode.
    let copy = world.path("inplace/zstd");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    run_support::copy(Path::new(&zstd), &copy);
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o750)).unwrap();
    ok(&world.fhskit(&["patch", "--offline", "--in-place", copy.to_str().unwrap()]));
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o7777, 0o750);
    let o = harness.run(&world, &[copy.to_str().unwrap(), "--version"]);
    assert!(ok(&o).contains("Zstandard CLI"), "{}", text(&o));
}

#[test]
fn patch_a_bundle_directory_and_the_autopatchelf_options() {
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
        &[&format!("-L{}", app.join("lib").display()), "-l:libappgreet.so.1", "-Wl,-rpath,$ORIGIN/../lib"],
    );
    // A whole directory: the bundled library satisfies the program and keeps its place; libz comes from a package.
    let fixed = world.path("fixed");
    let out =
        ok(&world.fhskit(&["patch", "--offline", "--out", fixed.to_str().unwrap(), app.to_str().unwrap()]));
    assert!(out.contains("bin/app") && out.contains("lib/libappgreet.so.1"), "{out}");
    let o = harness.run(&world, &[fixed.join("bin/app").to_str().unwrap(), "zz"]);
    assert!(ok(&o).contains("crc32(zz) = 618208161"), "{}", text(&o));

    // A need nothing provides fails by name, unless ignored.
    let lib = world.path("gone/libfhskitgone.so.3");
    world.cc(&lib, &["run-missing-lib.c"], &["-shared", "-fPIC", "-Wl,-soname,libfhskitgone.so.3"]);
    let prog = world.path("needs-gone");
    world.cc(
        &prog,
        &["run-missing.c"],
        &[&format!("-L{}", lib.parent().unwrap().display()), "-l:libfhskitgone.so.3"],
    );
    std::fs::remove_dir_all(world.path("gone")).unwrap();
    let before = store_paths(&world);
    let o = world.fhskit(&["patch", "--offline", prog.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("libfhskitgone.so.3"), "{}", text(&o));
    assert_eq!(before, store_paths(&world), "a failed patch added nothing to the store");
    let out_dir = world.path("ignored");
    ok(&world.fhskit(&[
        "patch",
        "--offline",
        "--ignore-missing",
        "libfhskit*",
        "--out",
        out_dir.to_str().unwrap(),
        prog.to_str().unwrap(),
    ]));
    let needed =
        ok(&world.fhskit(&["patchelf", "--print-needed", out_dir.join("needs-gone").to_str().unwrap()]));
    assert!(needed.contains("libfhskitgone.so.3"), "{needed}");

    // Only the executable, its bundle found through $ORIGIN: --keep-libc leaves the interpreter and the C library
    // to the host; --runtime-dependency adds a library directory to the path.
    let keep = world.path("keep");
    ok(&world.fhskit(&[
        "patch",
        "--offline",
        "--keep-libc",
        "--runtime-dependency",
        "liblzma.so.5",
        "--out",
        keep.to_str().unwrap(),
        app.join("bin/app").to_str().unwrap(),
    ]));
    let app_out = keep.join("app");
    let interp = ok(&world.fhskit(&["patchelf", "--print-interpreter", app_out.to_str().unwrap()]));
    assert_eq!(interp.trim(), "/lib64/ld-linux-x86-64.so.2");
    let rpath = ok(&world.fhskit(&["patchelf", "--print-rpath", app_out.to_str().unwrap()]));
    assert!(rpath.contains("-liblzma5-") && !rpath.contains("-libc6-"), "{rpath}");
}

#[test]
fn patch_add_to_profile_makes_a_generation() {
    let world = World::new();
    let zstd = zstd(&world);
    let o = world.fhskit(&["patch", "--offline", "--add-to-profile", &zstd]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    let profile = err
        .lines()
        .find_map(|l| l.strip_prefix("installed into ")?.split(" (generation 1)").next())
        .unwrap_or_else(|| panic!("no generation 1 reported: {err}"))
        .to_owned();
    let gens = ok(&world.fhskit(&["profile", "list-generations"]));
    assert_eq!(gens.lines().count(), 1, "{gens}");
    assert!(gens.contains("(current)"), "{gens}");
    // The profile's bin/ has the program, and it runs.
    let o =
        std::process::Command::new(Path::new(&profile).join("bin/zstd")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("Zstandard CLI"), "{o:?}");
    // Patching the same program again changes nothing: no new generation.
    ok(&world.fhskit(&["patch", "--offline", "--add-to-profile", &zstd]));
    assert_eq!(ok(&world.fhskit(&["profile", "list-generations"])).lines().count(), 1);
}

#[test]
fn generate_writes_env_toml_that_runs_and_a_build_fhs_env_expression() {
    let world = World::new();
    let zstd = zstd(&world);
    let toml = world.path("env.toml");
    ok(&world.fhskit(&["generate", "--offline", &zstd, "-o", toml.to_str().unwrap()]));
    let text_toml = std::fs::read_to_string(&toml).unwrap();
    for want in ["# libc6:amd64", "libc.so.6", "# liblzma5:amd64", "liblzma.so.5", "run = ["] {
        assert!(text_toml.contains(want), "missing {want}: {text_toml}");
    }
    let o = world.fhskit(&["env", "run", toml.to_str().unwrap(), "--", &zstd, "--version"]);
    assert!(ok(&o).contains("Zstandard CLI"), "{}", text(&o));

    let nix = ok(&world.fhskit(&["generate", "--offline", "--format", "nix", &zstd]));
    assert!(nix.contains("buildFHSEnv {"), "{nix}");
    assert!(nix.contains("# zlib1g:amd64") && nix.contains("libz.so.1"), "{nix}");
    let lines = nix.lines().filter(|l| l.contains("builtins.storePath")).count();
    assert_eq!(lines, 4, "one store path per package: {nix}");
    // It is Nix that evaluates: called with a stand-in for nixpkgs, it gives buildFHSEnv the expected arguments.
    let file = world.path("app.nix");
    std::fs::write(&file, &nix).unwrap();
    let expr = format!(
        "let e = import {} {{ pkgs = {{ buildFHSEnv = a: a; }}; }}; in [ e.name e.runScript (builtins.length (e.targetPkgs null)) ]",
        file.display()
    );
    let o = world.fhskit(&["eval", "--strict", "--json", "-E", &expr]);
    assert_eq!(ok(&o).trim(), format!("[\"zstd-fhs\",{:?},4]", zstd), "{}", text(&o));
}

#[test]
fn steam_run_builds_its_env_once_and_reuses_it() {
    let world = World::new();
    let hello = world.path("hello32");
    world.cc(&hello, &["run-hello32.c"], &["-m32"]);
    let o = world.fhskit(&["steam-run", "--offline", "--32", "sh", "-c", "test -e /lib/ld-linux.so.2 && test -e /lib64/ld-linux-x86-64.so.2 && ls /usr/lib/libz.so.1 /usr/lib32/libc.so.6"]);
    let out = ok(&o);
    assert!(out.contains("/usr/lib/libz.so.1") && out.contains("/usr/lib32/libc.so.6"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("steam-run env with"), "{}", text(&o));
    let built = store_paths(&world);
    // The second start reuses the env: nothing is built or added.
    let o = world.fhskit(&["steam-run", "--offline", "--32", hello.to_str().unwrap()]);
    assert!(ok(&o).contains("hello from 32-bit code"), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("steam-run env with"), "{}", text(&o));
    assert_eq!(built, store_paths(&world));
    // Exit status passes through.
    let o = world.fhskit(&["steam-run", "--offline", "--32", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
}
