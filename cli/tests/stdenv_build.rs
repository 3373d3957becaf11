//! The package set's `stdenv.mkDerivation` and builders end to end: the FAQ's acceptance files (`tests/acceptance/`,
//! verbatim copies) built with `fhskit build` against a signed apt repository of real Debian packages re-packed from
//! this host (`tests/fixtures/run-repo.sh`) and served on 127.0.0.1, into a store in a temporary
//! directory; nothing comes from the network or from the host's dpkg database.
//! - `callPackage ./mypackage.nix {}`: Debian's gcc, make and pkg-config in the build's FHS tree; the result prints
//!   the zlib versions, also with the host's libraries hidden
//! - `callPackage_i686 ./mypackage.nix {}`: Debian's i386 gcc, binutils and make (downloaded `.deb` files as the
//!   archive ships them, `tests/fixtures/i386-stdenv-debs.sh`, added to the repository's binary-i386 index) build a
//!   32-bit program with the store's i386 loader and zlib
//! - `mybinaryprogram.nix`: a prebuilt program patched with `$NIX_CC/nix-support/dynamic-linker` and
//!   `lib.makeLibraryPath` of xlibs runs with the host's libraries hidden
//! - `fetchurl` with `lib.fakeHash`: Nix's hash mismatch message, then the printed hash builds
//! - `writeShellScriptBin`, `makeWrapper`/`wrapProgram`, `symlinkJoin`, `buildEnv`, `runCommand`, `autoPatchelfHook`

mod run_support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use run_support::{Harness, World, ok, text};

/// The X libraries the prebuilt mybinaryprogram of the acceptance files needs, besides the stdenv's packages.
const EXTRA_PACKAGES: &[&str] = &["libxrandr2", "libxinerama1", "libxcursor1"];

/// The repository's packages (run-repo.sh adds their dependency closure).
fn packages() -> Vec<&'static str> {
    [run_support::STDENV_PACKAGES, EXTRA_PACKAGES].concat()
}

/// The repository (built once per test process, in `/tmp/fhskit-stdenv-repo-<pid>`) and the port it is served on.
/// With the downloaded i386 stdenv packages ([`run_support::i386_stdenv_debs`]) in its binary-i386 index when they
/// are there (the i686 test fails without them).
fn repository() -> &'static (PathBuf, u16) {
    static REPO: OnceLock<(PathBuf, u16)> = OnceLock::new();
    REPO.get_or_init(|| {
        let i386 = run_support::i386_stdenv_debs().ok();
        run_support::served_repository_with("fhskit-stdenv-repo-", &packages(), i386.as_deref())
    })
}

/// A world whose fhskit uses the repository (config.toml) with its index fetched, and the acceptance files in its
/// directory.
fn world() -> World {
    let (dir, port) = repository();
    run_support::acceptance_world(
        dir,
        *port,
        &["amd64"],
        &["mypackage.nix", "mypackage-src", "mybinaryprogram.nix"],
    )
}

fn build(world: &World, args: &[&str]) -> String {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    ok(&world.fhskit(&all)).trim().to_owned()
}

fn run(program: &Path) -> String {
    let o = std::process::Command::new(program).output().unwrap();
    assert!(o.status.success(), "{} failed:\n{}", program.display(), text(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn mypackage_builds_with_debian_gcc_and_prints_the_zlib_versions() {
    let world = world();
    let out = build(&world, &["-E", "with import <nixpkgs> { }; callPackage ./mypackage.nix { }"]);
    assert!(out.ends_with("-mypackage-1.0"), "{out}");
    let program = Path::new(&out).join("bin/mypackage");
    assert_eq!(std::fs::canonicalize(world.path("result")).unwrap(), Path::new(&out));
    let printed = run(&program);
    assert!(printed.starts_with("mypackage built against zlib 1.2.13, running with 1.2.13"), "{printed}");
    // The program names the store's loader and zlib: it runs where the host's libraries are hidden. (The
    // harness's `fhskit patch` makes its own ./result: the printed path is used.)
    let harness = Harness::new(&world);
    let o = harness.run(&world, &[program.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("running with 1.2.13"), "{}", text(&o));
}

/// Debian packages of the i386 build's toolchain (and zlib's development files) that must be in its tree as i386.
const I386_TOOLCHAIN: &[&str] = &[
    "gcc-12",
    "cpp-12",
    "binutils-i686-linux-gnu",
    "libgcc-12-dev",
    "make",
    "bash",
    "libc6-dev",
    "zlib1g-dev",
];

#[test]
fn call_package_i686_builds_mypackage_with_debian_s_i386_toolchain() {
    if let Err(missing) = run_support::i386_stdenv_debs() {
        return test_support::unmet(missing);
    }
    for tool in ["file", "readelf"] {
        if !test_support::have_tool(tool) {
            return test_support::unmet(format!("{tool} (packages file, binutils)"));
        }
    }
    let (dir, port) = repository();
    let world =
        run_support::acceptance_world(dir, *port, &["amd64", "i386"], &["mypackage.nix", "mypackage-src"]);
    // The acceptance table's order: the 64-bit row first, evaluated with the same lock file. It pins pkgconf-bin
    // (Multi-Arch: foreign) for amd64, which the i386 tree then takes too: its `pkg-config` is the amd64 program,
    // which finds i386's `.pc` files only through the i386 setup's PKG_CONFIG_LIBDIR (as tests/realworld sees it).
    ok(&world.fhskit(&[
        "eval",
        "--raw",
        "-E",
        "with import <nixpkgs> { }; (callPackage ./mypackage.nix { }).drvPath",
    ]));
    let expr = "with import <nixpkgs> { }; callPackage_i686 ./mypackage.nix { }";
    // The build's tree holds Debian's i386 compiler, binutils, make and bash, and not the amd64 compiler: a native
    // 32-bit toolchain, not `gcc -m32`.
    let check = format!(
        "with import <nixpkgs> {{ }}; let paths = ({expr}).fhskitRoot.paths; \
         has = d: if builtins.elem d.outPath paths then \"in\" else \"out\"; in \
         builtins.concatStringsSep \"\\n\" (map (n: let d = pkgsi686Linux.debian.${{n}}; in \
         \"${{n}} ${{d.meta.debian.architecture}} ${{has d}}\") [ {} ] ++ [ \"amd64 gcc-12 ${{has debian.gcc-12}}\" \
         \"amd64 pkgconf-bin ${{has debian.pkgconf-bin}}\" ])",
        I386_TOOLCHAIN.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(" ")
    );
    let tree = ok(&world.fhskit(&["eval", "--raw", "-E", &check]));
    let expected: Vec<String> = I386_TOOLCHAIN
        .iter()
        .map(|p| format!("{p} i386 in"))
        .chain(["amd64 gcc-12 out".to_owned(), "amd64 pkgconf-bin in".to_owned()])
        .collect();
    assert_eq!(tree.lines().collect::<Vec<_>>(), expected);
    let out = build(&world, &["-E", expr]);
    assert!(out.ends_with("-mypackage-1.0"), "{out}");
    assert_eq!(std::fs::canonicalize(world.path("result")).unwrap(), Path::new(&out));
    let program = world.path("result/bin/mypackage");
    // A 32-bit x86 program whose loader is glibc's i386 ld.so in the store, and zlib the i386 package's.
    let o = std::process::Command::new("file").arg("-L").arg(&program).output().unwrap();
    let described = ok(&o);
    assert!(described.contains("ELF 32-bit LSB") && described.contains("Intel 80386"), "{described}");
    let (libc, zlib) = {
        let paths = ok(&world.fhskit(&[
            "eval",
            "--raw",
            "-E",
            "with import <nixpkgs> { }; \"${pkgsi686Linux.debian.libc6} ${pkgsi686Linux.debian.zlib1g}\"",
        ]));
        let (libc, zlib) = paths.split_once(' ').unwrap();
        (libc.to_owned(), zlib.trim().to_owned())
    };
    let loader = format!("{libc}/lib/i386-linux-gnu/ld-linux.so.2");
    assert!(described.contains(&format!("interpreter {loader},")), "{described}");
    let o = std::process::Command::new("readelf").args(["-l", "-d", "-W"]).arg(&program).output().unwrap();
    let headers = ok(&o);
    assert!(headers.contains(&format!("[Requesting program interpreter: {loader}]")), "{headers}");
    let runpath = headers.lines().find(|l| l.contains("(RUNPATH)")).unwrap_or_else(|| panic!("{headers}"));
    assert!(runpath.contains(&format!("{zlib}/lib/i386-linux-gnu")), "{runpath}");
    let printed = run(&program);
    assert!(printed.starts_with("mypackage built against zlib 1.2.13, running with 1.2.13"), "{printed}");
    // It runs where the host's libraries (its /lib/ld-linux.so.2 too) are hidden. (The harness's `fhskit patch`
    // makes its own ./result: the printed path is used.)
    let harness = Harness::new(&world);
    let o = harness.run(&world, &[&format!("{out}/bin/mypackage")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("running with 1.2.13"), "{}", text(&o));
}

#[test]
fn mybinaryprogram_is_patched_and_runs_without_host_libraries() {
    let world = world();
    world.cc(
        &world.path("mybinaryprogram"),
        &["stdenv-xlibs.c"],
        &[
            "/usr/lib/x86_64-linux-gnu/libXrandr.so.2",
            "/usr/lib/x86_64-linux-gnu/libXinerama.so.1",
            "/usr/lib/x86_64-linux-gnu/libXcursor.so.1",
        ],
    );
    let out = build(&world, &["mybinaryprogram.nix"]);
    let program = Path::new(&out).join("bin/mybinaryprogram");
    let harness = Harness::new(&world);
    // Without fhskit's help the program cannot start there (its loader and libraries are the host's) …
    let o = harness.run(&world, &[world.path("mybinaryprogram").to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    // … the patched one can.
    let o = harness.run(&world, &[program.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "mybinaryprogram runs: cursor image made\n");
}

#[test]
fn a_fake_hash_prints_nix_s_mismatch_and_the_printed_hash_builds() {
    let world = world();
    let files = world.path("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("data.txt"), "payload\n").unwrap();
    let server = test_support::http::Server::files(files);
    let port = server.port();
    let write = |hash: &str| {
        std::fs::write(
            world.path("fetch.nix"),
            format!(
                "with import <nixpkgs> {{ }};\nfetchurl {{ url = \"http://127.0.0.1:{port}/data.txt\"; hash = {hash}; }}\n"
            ),
        )
        .unwrap();
    };
    write("lib.fakeHash");
    let o = world.fhskit(&["build", "fetch.nix"]);
    assert_eq!(o.status.code(), Some(102), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("hash mismatch in fixed-output derivation"), "{err}");
    assert!(err.contains("specified: sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), "{err}");
    let got = err.lines().find_map(|l| l.trim().strip_prefix("got:")).expect("a got: line").trim().to_owned();
    write(&format!("\"{got}\""));
    let out = build(&world, &["fetch.nix"]);
    assert_eq!(std::fs::read_to_string(out).unwrap(), "payload\n");
}

#[test]
fn builders_make_scripts_wrappers_and_trees() {
    let world = world();
    std::fs::write(
        world.path("builders.nix"),
        r#"with import <nixpkgs> { };
let
  hi = writeShellScriptBin "hi" ''echo "hi $GREETING $*"'';
  wrapped = stdenv.mkDerivation {
    name = "wrapped";
    dontUnpack = true;
    nativeBuildInputs = [ makeWrapper ];
    installPhase = ''
      mkdir -p $out/bin
      cp ${hi}/bin/hi $out/bin/hi
      wrapProgram $out/bin/hi --set GREETING there --add-flags first
      makeWrapper ${hi}/bin/hi $out/bin/hi-path --prefix PATH : /opt/a --run 'echo "$PATH" | cut -d: -f1'
    '';
  };
  made = runCommand "made" { } "mkdir -p $out/share; echo made > $out/share/made";
  joined = symlinkJoin { name = "joined"; paths = [ wrapped made ]; };
  env = buildEnv { name = "env"; paths = [ hi made ]; };
in [ wrapped joined env ]
"#,
    )
    .unwrap();
    let out = build(&world, &["builders.nix"]);
    let paths: Vec<&str> = out.lines().collect();
    assert_eq!(paths.len(), 3, "{out}");
    let wrapped = Path::new(paths[0]);
    assert_eq!(run(&wrapped.join("bin/hi")), "hi there first\n");
    assert!(wrapped.join("bin/.hi-wrapped").exists());
    assert_eq!(run(&wrapped.join("bin/hi-path")), "/opt/a\nhi  \n");
    let joined = Path::new(paths[1]);
    assert_eq!(run(&joined.join("bin/hi")), "hi there first\n");
    assert_eq!(std::fs::read_to_string(joined.join("share/made")).unwrap(), "made\n");
    let env = Path::new(paths[2]);
    // Links into the packages (a directory only one package has is linked as a whole, as nixpkgs' buildEnv does).
    assert_eq!(run(&env.join("bin/hi")), "hi  \n");
    assert!(std::fs::canonicalize(env.join("bin/hi")).unwrap().starts_with(world.path("store")));
    assert_eq!(std::fs::read_to_string(env.join("share/made")).unwrap(), "made\n");
}

#[test]
fn auto_patchelf_hook_makes_a_prebuilt_program_run_without_host_libraries() {
    let world = world();
    world.cc(
        &world.path("prebuilt/bin/app"),
        &["stdenv-xlibs.c"],
        &[
            "/usr/lib/x86_64-linux-gnu/libXrandr.so.2",
            "/usr/lib/x86_64-linux-gnu/libXinerama.so.1",
            "/usr/lib/x86_64-linux-gnu/libXcursor.so.1",
        ],
    );
    std::fs::write(
        world.path("app.nix"),
        r#"with import <nixpkgs> { };
stdenv.mkDerivation {
  pname = "app";
  version = "1";
  src = ./prebuilt;
  nativeBuildInputs = [ autoPatchelfHook ];
  buildInputs = with debian; [ libxrandr2 libxinerama1 libxcursor1 ];
  installPhase = "mkdir -p $out; cp -r bin $out/";
}
"#,
    )
    .unwrap();
    let o = world.fhskit(&["build", "app.nix"]);
    assert!(o.status.success(), "{}", text(&o));
    let program = Path::new(String::from_utf8_lossy(&o.stdout).trim()).join("bin/app");
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(log.contains("automatically fixing dependencies for ELF files"), "{log}");
    assert!(log.contains("libXrandr.so.2 -> found:"), "{log}");
    let harness = Harness::new(&world);
    let o = harness.run(&world, &[program.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "mybinaryprogram runs: cursor image made\n");
    // A library no input provides fails the build, as nixpkgs' hook does.
    std::fs::write(
        world.path("missing.nix"),
        r#"with import <nixpkgs> { };
stdenv.mkDerivation {
  pname = "missing";
  version = "1";
  src = ./prebuilt;
  nativeBuildInputs = [ autoPatchelfHook ];
  installPhase = "mkdir -p $out; cp -r bin $out/";
}
"#,
    )
    .unwrap();
    let o = world.fhskit(&["build", "missing.nix"]);
    assert_eq!(o.status.code(), Some(100), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("auto-patchelf could not satisfy dependency libXrandr.so.2"), "{err}");
}

#[test]
fn mk_derivation_phases_hooks_outputs_and_attributes() {
    let world = world();
    let tarball = world.path("src.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(world.dir.path())
        .arg("mypackage-src")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        world.path("attrs.nix"),
        r#"with import <nixpkgs> { };
let
  base = stdenv.mkDerivation rec {
    pname = "hooks";
    version = "2.0";
    src = ./src.tar.gz;
    nativeBuildInputs = [ pkg-config ];
    buildInputs = [ zlib ];
    outputs = [ "out" "dev" ];
    label = "${pname}-label";
    preBuildHooks = [ "echo from-array >> $NIX_BUILD_TOP/trace" ];
    preBuild = "echo preBuild >> $NIX_BUILD_TOP/trace";
    buildPhase = ''
      runHook preBuild
      make
      runHook postBuild
    '';
    postBuild = "echo postBuild >> $NIX_BUILD_TOP/trace";
    installPhase = ''
      mkdir -p $out/bin $dev/include
      cp mypackage $out/bin/
      cp $NIX_BUILD_TOP/trace $out/trace
      echo "$label" > $out/label
      echo '#define HOOKS 1' > $dev/include/hooks.h
      printf '#!/bin/sh\necho script\n' > $out/bin/script
      chmod +x $out/bin/script
    '';
    passthru.extra = "passed";
    meta.description = "a test";
  };
in {
  inherit base;
  name = base.name;
  extra = base.extra;
  description = base.meta.description;
  changed = base.overrideAttrs (old: { version = "3.0"; postBuild = old.postBuild + "; echo changed >> $NIX_BUILD_TOP/trace"; });
}
"#,
    )
    .unwrap();
    let eval = |attr: &str| ok(&world.fhskit(&["eval", "--raw", "attrs.nix", "-A", attr])).trim().to_owned();
    assert_eq!(eval("name"), "hooks-2.0");
    assert_eq!(eval("extra"), "passed");
    assert_eq!(eval("description"), "a test");
    let out = build(&world, &["attrs.nix", "-A", "base"]);
    let dev = build(&world, &["attrs.nix", "-A", "base.dev"]);
    let (o, dev) = (Path::new(out.lines().next().unwrap()), Path::new(dev.lines().next().unwrap()));
    assert!(o.to_str().unwrap().ends_with("-hooks-2.0") && dev.to_str().unwrap().ends_with("-hooks-2.0-dev"));
    assert_eq!(std::fs::read_to_string(o.join("trace")).unwrap(), "preBuild\nfrom-array\npostBuild\n");
    assert_eq!(std::fs::read_to_string(o.join("label")).unwrap(), "hooks-label\n");
    assert_eq!(std::fs::read_to_string(dev.join("include/hooks.h")).unwrap(), "#define HOOKS 1\n");
    assert!(run(&o.join("bin/mypackage")).contains("running with 1.2.13"));
    // patchShebangs: the script's interpreter is now a store path (Debian's /bin/sh is dash).
    let script = std::fs::read_to_string(o.join("bin/script")).unwrap();
    let first = script.lines().next().unwrap();
    assert!(first.starts_with("#!") && first.contains("/store/") && first.ends_with("/bin/dash"), "{first}");
    assert_eq!(run(&o.join("bin/script")), "script\n");
    let changed = build(&world, &["attrs.nix", "-A", "changed"]);
    let changed = Path::new(changed.lines().next().unwrap());
    assert!(changed.to_str().unwrap().ends_with("-hooks-3.0"));
    assert_eq!(
        std::fs::read_to_string(changed.join("trace")).unwrap(),
        "preBuild\nfrom-array\npostBuild\nchanged\n"
    );
    // An unfree meta.license is refused with nixpkgs' message until the user's config allows it.
    std::fs::write(
        world.path("unfree.nix"),
        "with import <nixpkgs> { };\nstdenv.mkDerivation { name = \"nonfree\"; dontUnpack = true; \
         installPhase = \"mkdir $out\"; meta.license = lib.licenses.unfree; }\n",
    )
    .unwrap();
    let o = world.fhskit(&["eval", "unfree.nix", "-A", "drvPath"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains(
            "Package ‘nonfree’ in «unknown-file» has an unfree license (‘unfree’), refusing to evaluate."
        ),
        "{err}"
    );
    assert!(err.contains("$ export NIXPKGS_ALLOW_UNFREE=1"), "{err}");
    std::fs::create_dir_all(world.path("config/nixpkgs")).unwrap();
    std::fs::write(world.path("config/nixpkgs/config.nix"), "{ allowUnfree = true; }\n").unwrap();
    ok(&world.fhskit(&["eval", "unfree.nix", "-A", "drvPath"]));
}
