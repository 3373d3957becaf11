//! The acceptance rows of `fhskit shell` (tests/acceptance/README.md) end to end, with fhskit's package set over a
//! signed apt repository of real Debian packages re-packed from this host (`tests/fixtures/run-repo.sh`) and served
//! on 127.0.0.1, into a store in a temporary directory; nothing comes from the network or the host's dpkg database.
//! - `fhskit shell -p gcc pkg-config zlib --run 'make -C mypackage-src'`: Debian's gcc, make and pkg-config in the
//!   shell's FHS root; the program builds and runs
//! - `fhskit shell --run 'pkg-config --libs zlib'` with the FAQ's default.nix: `-lz`
//! - `fhskit shell fhsUser.nix`: bash in the FHS tree of buildFHSUserEnv, with `/usr/lib/libz.so.1`, coreutils'
//!   `ls`, and the 32-bit `libasound.so.2` in `/usr/lib32` (the i386 half needs the host's i386 packages)
//! - the same env as `./result/bin/example-env`, and `fhskit env` with package names

mod run_support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use run_support::{World, ok, text};

/// The acceptance files' packages besides the stdenv's (fhsUser.nix's udev and alsa-lib, less).
const EXTRA_PACKAGES: &[&str] = &["libudev1", "libasound2", "less"];

/// The repository's packages (run-repo.sh adds their dependency closure).
fn packages() -> Vec<&'static str> {
    [run_support::STDENV_PACKAGES, EXTRA_PACKAGES].concat()
}

fn requirements() -> bool {
    for tool in ["dpkg-deb", "dpkg-scanpackages", "gpg"] {
        if !test_support::have_tool(tool) {
            test_support::unmet(format!("{tool} (.ci/run installs it)"));
            return false;
        }
    }
    for package in packages() {
        let o = Command::new("dpkg-query").args(["-W", "-f=${Status}", package]).output().unwrap();
        if !String::from_utf8_lossy(&o.stdout).ends_with(" installed") {
            test_support::unmet(format!("the host package {package} (.ci/run installs it)"));
            return false;
        }
    }
    true
}

/// The repository (built once per test process, in `/tmp/fhskit-shell-repo-<pid>`) and the port it is served on.
fn repository() -> &'static (PathBuf, u16) {
    static REPO: OnceLock<(PathBuf, u16)> = OnceLock::new();
    REPO.get_or_init(|| {
        let mut packages = packages();
        if host_i386() {
            packages.extend(I386_PACKAGES);
        }
        run_support::served_repository("fhskit-shell-repo-", &packages)
    })
}

/// A world whose fhskit uses the repository, with the acceptance files in its directory.
fn world() -> World {
    let (dir, port) = repository();
    let architectures: &[&str] = if host_i386() { &["amd64", "i386"] } else { &["amd64"] };
    run_support::acceptance_world(dir, *port, architectures, &["default.nix", "fhsUser.nix", "mypackage-src"])
}

#[test]
fn shell_with_packages_builds_and_runs_mypackage() {
    if !requirements() {
        return;
    }
    let world = world();
    let o = world.fhskit(&["shell", "-p", "gcc", "pkg-config", "zlib", "--run", "make -C mypackage-src"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(world.path("mypackage-src/mypackage").exists(), "{}", text(&o));
    // The program was linked against the zlib of the shell: it runs in the shell.
    let out = ok(&world.fhskit(&[
        "shell",
        "-p",
        "gcc",
        "pkg-config",
        "zlib",
        "--run",
        "./mypackage-src/mypackage",
    ]));
    assert!(out.contains("mypackage built against zlib 1.2.13, running with 1.2.13"), "{out}");
    // gcc, pkg-config and cc1 come from their Debian packages in the store, through the shell's FHS root.
    let out = ok(&world.fhskit(&[
        "shell",
        "-p",
        "gcc",
        "pkg-config",
        "zlib",
        "--run",
        "readlink -f $(command -v gcc); readlink -f $(command -v pkg-config); gcc -print-prog-name=cc1; echo $IN_NIX_SHELL",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 4, "{out}");
    let store = world.path("store");
    // gcc is the stdenv's wrapper around Debian's gcc-12; pkg-config is pkgconf-bin's program through pkgconf's
    // link; cc1 is found in the gcc-12 package through the env's prefix.
    assert!(lines[0].starts_with(store.to_str().unwrap()) && lines[0].ends_with("/gcc"), "{out}");
    assert!(lines[1].starts_with(store.to_str().unwrap()) && lines[1].ends_with("/usr/bin/pkgconf"), "{out}");
    assert_eq!(lines[2], "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "{out}");
    assert_eq!(lines[3], "impure");
}

#[test]
fn shell_on_the_faq_default_nix_gives_pkg_config_zlib() {
    if !requirements() {
        return;
    }
    let world = world();
    let out = ok(&world.fhskit(&["shell", "--run", "pkg-config --libs zlib"]));
    assert_eq!(out.trim(), "-lz");
    // --pure: the caller's variables are gone, the derivation's are there.
    let o = Command::new(run_support_fhskit())
        .args([
            "shell",
            "--pure",
            "--run",
            "echo \"[$CALLER_VAR|$name|$IN_NIX_SHELL]\"; pkg-config --libs zlib",
        ])
        .env("CALLER_VAR", "set")
        .env("FHSKIT_STORE", world.path("store"))
        .env("XDG_CACHE_HOME", world.path("cache"))
        .env("XDG_CONFIG_HOME", world.path("config"))
        .env("HOME", world.path("home"))
        .current_dir(world.dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["[|dev-environment|pure]", "-lz"], "{}", text(&o));
}

fn run_support_fhskit() -> &'static str {
    env!("CARGO_BIN_EXE_fhskit")
}

/// The i386 instances of the host's packages the 32-bit half of fhsUser.nix needs (run-repo.sh adds their i386
/// closure: libc6, libgcc-s1, gcc-12-base).
const I386_PACKAGES: &[&str] = &["libasound2:i386", "libudev1:i386"];

/// Whether the host has the i386 packages of [`I386_PACKAGES`] installed.
fn host_i386() -> bool {
    I386_PACKAGES.iter().chain(&["libc6:i386"]).all(|p| {
        let o = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).ends_with(" installed")
    })
}

#[test]
fn fhs_user_env_is_bash_in_an_fhs_tree() {
    if !requirements() {
        return;
    }
    let world = world();
    // The FAQ's file needs the i386 packages for multiPkgs; the 64-bit half is checked with targetPkgs alone when
    // the host has none (run-repo.sh re-packs installed packages only).
    let file = if host_i386() {
        "fhsUser.nix".to_owned()
    } else {
        test_support::unmet(
            "the host's i386 packages libasound2:i386, libudev1:i386 (the 32-bit half of fhsUser.nix)",
        );
        let original = std::fs::read_to_string(world.path("fhsUser.nix")).unwrap();
        let only64 = original
            .replace("multiPkgs = pkgs: with pkgs; [ udev alsa-lib ];", "")
            .replace("[ coreutils zlib ]", "[ coreutils zlib udev alsa-lib ]");
        std::fs::write(world.path("fhsUser64.nix"), only64).unwrap();
        "fhsUser64.nix".to_owned()
    };
    let out = ok(&world.fhskit(&[
        "shell",
        &file,
        "--run",
        "echo $0; ls /usr/lib/libz.so.1; readlink -f $(command -v ls); ls /usr/lib/libasound.so.2 /usr/lib32/libasound.so.2 2>/dev/null; true",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "bash", "{out}");
    assert_eq!(lines[1], "/usr/lib/libz.so.1", "{out}");
    assert!(lines[2].contains("-coreutils-") && lines[2].ends_with("/bin/ls"), "{out}");
    if file == "fhsUser.nix" {
        assert!(out.contains("/usr/lib32/libasound.so.2"), "{out}");
    } else {
        assert!(out.contains("/usr/lib/libasound.so.2"), "{out}");
    }
    // Without `.env`: ./result/bin/example-env enters the same env.
    let launcher = std::fs::read_to_string(world.path(&file)).unwrap().replace("}).env", "})");
    std::fs::write(world.path("launcher.nix"), launcher).unwrap();
    ok(&world.fhskit(&["build", "launcher.nix"]));
    let o = Command::new(world.path("result/bin/example-env"))
        .args(["-c", "ls /usr/lib/libz.so.1"])
        .env("FHSKIT", run_support_fhskit())
        .env("FHSKIT_STORE", world.path("store"))
        .env("HOME", world.path("home"))
        .env("XDG_CACHE_HOME", world.path("cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "/usr/lib/libz.so.1\n");
    // fhskit env with package names: the same packages, no Nix file.
    std::fs::write(
        world.path("named.toml"),
        "name = \"named\"\npackages = [\"zlib\", \"coreutils\", \"bash\"]\n",
    )
    .unwrap();
    let out = ok(&world.fhskit(&["env", "run", "named.toml", "--", "bash", "-c", "ls /usr/lib/libz.so.1"]));
    assert_eq!(out, "/usr/lib/libz.so.1\n");
}
