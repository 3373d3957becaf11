//! fhskit's package set (`<nixpkgs>` without a NIX_PATH entry) over a signed repository served on 127.0.0.1, built
//! from this host's packages (`tests/fixtures/run-repo.sh`): names pinned in the lock file on first use, Debian
//! packages and nixpkgs names (with `dev` outputs) built with `builtin:fetchurl` + `builtin:fhskit-deb`, and the
//! FAQ's `mybinaryprogram` recipe (loader and `lib.makeLibraryPath`) running with the host's libraries hidden.

mod run_support;

use std::path::Path;
use std::process::{Command, Output};

use run_support::{World, fixtures, ok, text};
use test_support::http::Server;

fn requirements() -> bool {
    for tool in ["dpkg-deb", "dpkg-scanpackages", "gpg", "bwrap", "cc"] {
        if !test_support::have_tool(tool) {
            test_support::unmet(format!("{tool} (.ci/run installs it)"));
            return false;
        }
    }
    for lib in ["libXrandr.so.2", "libXinerama.so.1", "libXcursor.so.1", "libz.so"] {
        if !Path::new("/usr/lib/x86_64-linux-gnu").join(lib).exists() {
            test_support::unmet(format!("/usr/lib/x86_64-linux-gnu/{lib} (.ci/run installs it)"));
            return false;
        }
    }
    true
}

/// A world whose configuration names the fixture repository, its index fetched, and an empty lock file in the
/// working directory (the one evaluations then pin in).
fn world_with_repo(packages: &[&str]) -> World {
    let world = World::new();
    let out = world.path("fixture-repo");
    let o = Command::new("sh").arg(fixtures().join("run-repo.sh")).arg(&out).args(packages).output().unwrap();
    assert!(o.status.success(), "building the repository failed:\n{}", text(&o));
    let repo = out.join("repo");
    let server = Server::files(repo.clone());
    let port = server.port();
    // The world outlives this function and its tests build against the repository throughout: serve it until
    // the test process ends.
    std::mem::forget(server);
    std::fs::create_dir_all(world.path("config/fhskit")).unwrap();
    std::fs::write(
        world.path("config/fhskit/config.toml"),
        format!(
            "[[pkgs.repository]]\nurl = \"http://127.0.0.1:{port}\"\nsuite = \"testing\"\ncomponents = [\"main\"]\n\
             architectures = [\"amd64\"]\nkeyring = \"{}\"\n",
            repo.join("key.gpg").display()
        ),
    )
    .unwrap();
    std::fs::write(world.path("fhskit.lock"), "version = 1\nrequest = []\n").unwrap();
    ok(&world.fhskit(&["pkgs", "update"]));
    world
}

fn eval_raw(world: &World, expr: &str) -> String {
    ok(&world.fhskit(&["eval", "--raw", "-E", expr]))
}

fn fhskit_env(world: &World, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(run_support::FHSKIT);
    cmd.args(args)
        .env("FHSKIT_STORE", world.path("store"))
        .env("XDG_CACHE_HOME", world.path("cache"))
        .env("XDG_CONFIG_HOME", world.path("config"))
        .env("HOME", world.path("home"))
        .env_remove("NIXPKGS_ALLOW_UNFREE")
        .env_remove("NIXPKGS_CONFIG")
        .env_remove("NIX_PATH")
        .current_dir(world.dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn run_hidden(world: &World, program: &Path) -> Output {
    // Only the test's directory (the store is in it), /proc and /dev: no /lib, /usr or loader of the host.
    Command::new("bwrap")
        .args(["--bind"])
        .arg(world.dir.path())
        .arg(world.dir.path())
        .args(["--proc", "/proc", "--dev", "/dev"])
        .arg(program)
        .output()
        .unwrap()
}

#[test]
fn package_set_over_a_local_repository() {
    if !requirements() {
        return;
    }
    let world = world_with_repo(&["zlib1g", "zlib1g-dev", "libxrandr2", "libxinerama1", "libxcursor1"]);

    // `<nixpkgs>` is the embedded set; a name is pinned in the lock file when first used, with its closure.
    let found = ok(&world.fhskit(&["eval", "--find-file", "nixpkgs"]));
    assert!(found.trim().ends_with("-nixpkgs"), "{found}");
    assert!(std::path::Path::new(found.trim()).join("default.nix").is_file(), "{found}");
    let version = eval_raw(&world, "with import <nixpkgs> {}; debian.zlib1g.version");
    let lock = std::fs::read_to_string(world.path("fhskit.lock")).unwrap();
    assert!(
        lock.contains("name = \"zlib1g\"") && lock.contains(&format!("version = \"{version}\"")),
        "{lock}"
    );
    assert!(lock.contains("name = \"libc6\""), "the closure is pinned too:\n{lock}");
    // Names the lock does not pin yet are still attributes (from the verified index).
    assert_eq!(eval_raw(&world, "with import <nixpkgs> {}; toString (debian ? libxcursor1)"), "1");
    assert_eq!(eval_raw(&world, "with import <nixpkgs> {}; toString (debian ? no-such-package)"), "");
    // The .deb is a fixed-output derivation with the index's SHA-256.
    let sha = eval_raw(&world, "with import <nixpkgs> {}; debian.zlib1g.deb.outputHash");
    assert!(lock.contains(&format!("sha256 = \"{sha}\"")), "{sha}\n{lock}");
    assert_eq!(
        eval_raw(&world, "with import <nixpkgs> {}; builtins.concatStringsSep \" \" zlib.outputs"),
        "out dev"
    );
    assert_eq!(eval_raw(&world, "with import <nixpkgs> {}; (lib.getDev zlib).pname"), "zlib1g-dev");
    assert_eq!(eval_raw(&world, "with import <nixpkgs> {}; lib.getName xlibs.libXrandr"), "libxrandr2");

    // zlib and zlib.dev build: nixpkgs' lib/ and include/ over Debian's tree, the dev link into the runtime path.
    let out = ok(&world.fhskit(&["build", "-E", "with import <nixpkgs> {}; [ zlib zlib.dev ]"]));
    let paths: Vec<&str> = out.lines().collect();
    assert_eq!(paths.len(), 2, "{out}");
    assert!(world.path("result/lib/libz.so.1").exists());
    assert!(world.path("result-2/include/zlib.h").exists());
    let so = std::fs::canonicalize(world.path("result-2/lib/libz.so")).unwrap();
    assert!(so.starts_with(paths[0]), "libz.so of the dev output leads to {}", so.display());
    assert!(world.path("result-2/lib/pkgconfig/zlib.pc").exists());

    // The FAQ's mybinaryprogram: the store's loader and makeLibraryPath of the three X libraries are enough with
    // the host's libraries hidden (libX11 and libc come through the libraries' own run paths).
    let program = world.path("mybinaryprogram");
    let host = Path::new("/usr/lib/x86_64-linux-gnu");
    let o = Command::new("cc")
        .arg("-o")
        .arg(&program)
        .arg(fixtures().join("nixpkgs-xprog.c"))
        .arg("-Wl,--no-as-needed")
        .args(["libXrandr.so.2", "libXinerama.so.1", "libXcursor.so.1"].map(|l| host.join(l)))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let hidden = run_hidden(&world, &program);
    assert!(!hidden.status.success(), "the program must not run unpatched without the host's libraries");
    let rpath = eval_raw(
        &world,
        "with import <nixpkgs> {}; lib.makeLibraryPath (with xlibs; [ libXrandr libXinerama libXcursor ])",
    );
    let loader = eval_raw(&world, "with import <nixpkgs> {}; \"${debian.libc6}/lib/ld-linux-x86-64.so.2\"");
    ok(&world.fhskit(&[
        "build",
        "--no-out-link",
        "-E",
        "with import <nixpkgs> {}; [ debian.libc6 xlibs.libXrandr xlibs.libXinerama xlibs.libXcursor ]",
    ]));
    ok(&world.fhskit(&[
        "patchelf",
        "--set-interpreter",
        &loader,
        "--set-rpath",
        &rpath,
        program.to_str().unwrap(),
    ]));
    let o = run_hidden(&world, &program);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("mybinaryprogram: Xcursor image made, Xrandr linked, Xinerama linked"),
        "{}",
        text(&o)
    );
}

#[test]
fn unfree_refused_config_overlays_and_i686() {
    if !requirements() {
        return;
    }
    let world = world_with_repo(&["zlib1g"]);
    let version = eval_raw(&world, "with import <nixpkgs> {}; debian.zlib1g.version");
    // The lock records each package's component; a package from non-free is unfree.
    let lock = std::fs::read_to_string(world.path("fhskit.lock")).unwrap();
    let start = lock.find("name = \"zlib1g\"").unwrap();
    let at = start + lock[start..].find("component = \"main\"").expect("component recorded in the lock");
    let edited =
        format!("{}component = \"non-free\"{}", &lock[..at], &lock[at + "component = \"main\"".len()..]);
    std::fs::write(world.path("fhskit.lock"), edited).unwrap();
    let expr = "with import <nixpkgs> {}; zlib.outPath";
    let o = fhskit_env(&world, &[], &["eval", "-E", expr]);
    assert!(!o.status.success());
    let msg = text(&o);
    let name = format!("zlib1g-{}", version.split_once(':').map_or(version.as_str(), |(_, v)| v));
    assert!(
        msg.contains(&format!(
            "Package ‘{name}’ in «unknown-file» has an unfree license (‘unfree’), refusing to evaluate."
        )) && msg.contains("$ export NIXPKGS_ALLOW_UNFREE=1")
            && msg.contains("{ allowUnfree = true; }"),
        "{msg}"
    );
    ok(&fhskit_env(&world, &[("NIXPKGS_ALLOW_UNFREE", "1")], &["eval", "-E", expr]));
    ok(&fhskit_env(
        &world,
        &[],
        &["eval", "-E", "with import <nixpkgs> { config.allowUnfree = true; }; zlib.outPath"],
    ));
    let license = fhskit_env(
        &world,
        &[("NIXPKGS_ALLOW_UNFREE", "1")],
        &["eval", "--raw", "-E", "with import <nixpkgs> {}; debian.zlib1g.meta.license.shortName"],
    );
    assert_eq!(ok(&license), "unfree");

    // A .deb that `fhskit pkgs` already verified into its cache is copied, not downloaded again.
    ok(&world.fhskit(&["pkgs", "fetch", "zlib1g", "--download-only"]));
    let o = fhskit_env(
        &world,
        &[("NIXPKGS_ALLOW_UNFREE", "1")],
        &["build", "--no-out-link", "-E", "with import <nixpkgs> {}; debian.zlib1g.deb"],
    );
    assert!(
        o.status.success() && text(&o).contains("copying '") && !text(&o).contains("downloading '"),
        "{}",
        text(&o)
    );

    // ~/.config/nixpkgs/config.nix and overlays/ are read when the arguments do not give them.
    std::fs::create_dir_all(world.path("config/nixpkgs/overlays")).unwrap();
    std::fs::write(world.path("config/nixpkgs/config.nix"), "{ allowUnfree = true; }").unwrap();
    std::fs::write(
        world.path("config/nixpkgs/overlays/hello.nix"),
        "final: prev: { greeting = \"hello from an overlay\"; zlibName = prev.zlib.pname; }",
    )
    .unwrap();
    ok(&fhskit_env(&world, &[], &["eval", "-E", expr]));
    assert_eq!(eval_raw(&world, "with import <nixpkgs> {}; greeting"), "hello from an overlay");
    assert_eq!(eval_raw(&world, "with import <nixpkgs> {}; zlibName"), "zlib1g");
    assert_eq!(eval_raw(&world, "with import <nixpkgs> { overlays = []; }; toString (pkgs ? greeting)"), "");

    // The i686 set asks for Debian's i386 packages (this repository has none).
    let o = fhskit_env(&world, &[], &["eval", "-E", "with import <nixpkgs> {}; pkgsi686Linux.zlib.outPath"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("there is no Debian package 'zlib1g' for i386"), "{}", text(&o));
    assert_eq!(eval_raw(&world, "with import <nixpkgs> {}; pkgsi686Linux.hostPlatform.system"), "i686-linux");
    // callPackage fills a file's arguments from the set.
    std::fs::write(world.path("pkg.nix"), "{ zlib, lib }: lib.getName zlib").unwrap();
    assert_eq!(eval_raw(&world, "with import <nixpkgs> {}; callPackage ./pkg.nix {}"), "zlib1g");
}
