//! End-to-end tests of `fhskit shell` (nix-shell) and of `buildFHSEnv` over `builtin:fhsenv`, with derivations
//! whose builders are the store's static busybox (the harness of the builder's tests), as root and as uid 65534.
//! Package trees are made from host files (zlib, busybox, bash and the libraries it loads) and added to the store.

mod build_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use build_support::{Env, text, users};

fn each_user(test: impl Fn(Env)) {
    for user in users() {
        eprintln!("--- as {user:?}");
        if let Some(env) = Env::new(user) {
            test(env);
        }
    }
}

/// The host's bash, when it has one.
fn host_bash() -> Option<PathBuf> {
    let p = PathBuf::from("/bin/bash");
    if p.exists() {
        Some(p)
    } else {
        test_support::unmet("bash at /bin/bash");
        None
    }
}

/// Copies `program` into `tree/usr/bin` with every library `ldd` lists into `tree/usr/lib/x86_64-linux-gnu` and
/// the loader into `tree/lib64`, so it runs inside an FHS env made of the tree.
fn program_tree(tree: &Path, program: &Path) {
    let bin = tree.join("usr/bin");
    let lib = tree.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(tree.join("lib64")).unwrap();
    std::fs::copy(program, bin.join(program.file_name().unwrap())).unwrap();
    let out = Command::new("ldd").arg(program).output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let path = match words.as_slice() {
            [_, "=>", p, ..] if p.starts_with('/') => PathBuf::from(p),
            [p, ..] if p.starts_with('/') => PathBuf::from(p),
            _ => continue,
        };
        let name = path.file_name().unwrap();
        if name.to_string_lossy().starts_with("ld-linux") {
            std::fs::copy(&path, tree.join("lib64").join(name)).unwrap();
        } else {
            std::fs::copy(&path, lib.join(name)).unwrap();
        }
    }
}

/// A package tree with the host's libz.so.1 (64-bit) in Debian's place.
fn zlib_tree(tree: &Path) -> bool {
    let Some(z) = ["/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        test_support::unmet("the host's 64-bit libz.so.1 (Debian package zlib1g)");
        return false;
    };
    let lib = tree.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(z, lib.join("libz.so.1")).unwrap();
    true
}

/// A package tree with busybox as `sh` and `ls`.
fn busybox_tree(tree: &Path) {
    let bin = tree.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for tool in ["sh", "ls", "readlink", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(tool)).unwrap();
    }
}

fn chmod_r(dir: &Path) {
    let st = Command::new("chmod").arg("-R").arg("a+rX").arg(dir).status().unwrap();
    assert!(st.success());
}

#[test]
fn a_shell_has_the_derivations_environment_and_its_inputs_built() {
    each_user(|env| {
        if host_bash().is_none() {
            return;
        }
        // shell.nix is taken before default.nix; the input derivation is built, the shell's own is not.
        env.nix("default", r#"mk "not-this" "exit 1""#);
        env.nix(
            "shell",
            r#"mkWith {
              dep = mk "dep" "echo dep-built > $out";
              stdenv = mk "stdenv" "mkdir $out; echo 'export FROM_SETUP=1; runHook() { eval \"\${!1}\"; }' > $out/setup";
              myVar = "a b";
              passAsFile = [ "big" ];
              big = "from a file";
              shellHook = "echo hook-ran";
            } "shell" "exit 1""#,
        );
        let out = env.ok(&[
            "shell",
            "--run",
            "cat $dep; echo \"$myVar|$IN_NIX_SHELL|$name|$FROM_SETUP\"; cat $bigPath; echo; test -d \"$NIX_BUILD_TOP\" && echo top-ok",
        ]);
        assert_eq!(out, "hook-ran\ndep-built\na b|impure|shell|1\nfrom a file\ntop-ok\n");
        // The command's status is the shell's.
        let st = env.run(&["shell", "--run", "exit 7"]);
        assert_eq!(st.status.code(), Some(7), "{}", text(&st));
        // --pure clears the caller's variables except the keep list and --keep names.
        let run = |args: &[&str]| {
            let out = env.command().env("FROM_CALLER", "yes").args(args).output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run(&["shell", "--run", "echo \"[$FROM_CALLER]\""]), "hook-ran\n[yes]\n");
        assert_eq!(
            run(&["shell", "--pure", "--run", "echo \"[$FROM_CALLER|$IN_NIX_SHELL]\""]),
            "hook-ran\n[|pure]\n"
        );
        assert_eq!(
            run(&["shell", "--pure", "--keep", "FROM_CALLER", "--run", "echo \"[$FROM_CALLER]\""]),
            "hook-ran\n[yes]\n"
        );
        // The temporary directory of the rc file (under TMPDIR, which is also NIX_BUILD_TOP) is gone afterwards.
        let tmp = env.work().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        chmod_r(&tmp);
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let out = env
            .command()
            .env("TMPDIR", &tmp)
            .args(["shell", "--run", "echo $NIX_BUILD_TOP"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("hook-ran\n{}\n", tmp.display()));
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "the shell's files are left in {}",
            tmp.display()
        );
        // Also when the shell has no `rm` (--pure unsets PATH), fails, or is killed by a signal.
        for (args, code) in [
            (&["shell", "--pure", "--run", "echo $bigPath"][..], Some(0)),
            (&["shell", "--pure", "--run", "exit 3"][..], Some(3)),
            (&["shell", "--run", "kill -TERM $$"][..], None),
        ] {
            let out = env.command().env("TMPDIR", &tmp).args(args).output().unwrap();
            assert_eq!(out.status.code(), code, "{args:?}: {}", text(&out));
            assert_eq!(
                std::fs::read_dir(&tmp).unwrap().count(),
                0,
                "{args:?} left the shell's files in {}",
                tmp.display()
            );
        }
    });
}

#[test]
fn attributes_arguments_packages_and_errors() {
    each_user(|env| {
        if host_bash().is_none() {
            return;
        }
        let f = env.nix(
            "multi",
            r#"{ who ? "nobody" }: { a = mkWith { inherit who; } "a" "exit 1"; b = mk "b" "exit 1"; }"#,
        );
        let f = f.to_str().unwrap();
        assert_eq!(env.ok(&["shell", f, "-A", "a", "--argstr", "who", "me", "--run", "echo $who"]), "me\n");
        assert_eq!(
            env.ok(&["shell", f, "-A", "a", "--arg", "who", "\"x\" + \"y\"", "--run", "echo $who"]),
            "xy\n"
        );
        let err = env.fails(&["shell", f, "--run", "true"], 1);
        assert!(err.contains("error: ") && err.contains("single derivation"), "{err}");
        // -p: nix-shell's expression over <nixpkgs> (here a stand-in set given with -I).
        let pkgs = env.work().join("fakepkgs");
        std::fs::create_dir_all(&pkgs).unwrap();
        let body = format!(
            r#"{{ ... }}: let bb = builtins.storePath "{}"; mkWith = a: n: s: derivation ({{ name = n; system = builtins.currentSystem; builder = "${{bb}}/bin/sh"; args = [ "-c" s ]; }} // a); self = {{
              pkgs = self;
              runCommand = name: attrs: script: mkWith attrs name script;
              hello = mkWith {{ }} "hello" "mkdir -p $out/bin; printf '#!/bin/sh\necho hello-from-input\n' > $out/bin/hello; chmod +x $out/bin/hello";
            }}; in self"#,
            env.busybox
        );
        std::fs::write(pkgs.join("default.nix"), body).unwrap();
        chmod_r(&pkgs);
        let out = env.ok(&[
            "shell",
            "-I",
            "nixpkgs=./fakepkgs",
            "-p",
            "hello",
            "--run",
            "for p in $buildInputs; do $p/bin/hello; done; echo $name",
        ]);
        assert_eq!(out, "hello-from-input\nshell\n");
        // Evaluation errors are printed as Nix prints them; a missing package is one.
        let err =
            env.fails(&["shell", "-I", "nixpkgs=./fakepkgs", "-p", "nosuchpackage", "--run", "true"], 1);
        assert!(err.contains("nosuchpackage"), "{err}");
        // No shell.nix or default.nix: a one-line error.
        let empty = env.work().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let out = env.command().current_dir(&empty).args(["shell", "--run", "true"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains("shell.nix"), "{err}");
    });
}

#[test]
fn build_fhs_env_gives_a_launcher_and_an_env_the_shell_enters() {
    each_user(|env| {
        let (z, b) = (env.work().join("pz"), env.work().join("pb"));
        if !zlib_tree(&z) {
            return;
        }
        busybox_tree(&b);
        chmod_r(&env.work());
        // buildFHSEnv from pkgs/nixpkgs, with stand-in packages: zlib depends on busybox (Debian's Depends), so the
        // closure brings it in; the launcher derivation's runCommand is a busybox script.
        let fhs_nix = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkgs/nixpkgs/build-fhsenv/default.nix");
        let fhs_nix = std::fs::canonicalize(fhs_nix).unwrap();
        let f = env.nix(
            "fhsuser",
            &format!(
                r#"let
              pkg = name: src: deps: {{ type = "derivation"; inherit name; outPath = builtins.path {{ path = src; inherit name; }}; debianDepends = deps; }};
              busybox = pkg "busybox" ./pb [ ];
              zlib = pkg "zlib" ./pz [ busybox ];
              pkgs = {{ inherit zlib busybox; runCommandLocal = name: attrs: script: mkWith (removeAttrs attrs [ "passthru" "meta" ]) name ''
                export PATH=${{bb}}/bin; ${{script}}''; }};
              set = import {} {{ inherit pkgs; }};
              env = set.buildFHSEnv {{ name = "example-env"; targetPkgs = p: [ p.zlib ]; runScript = "sh"; profile = "export FROM_PROFILE=yes"; }};
            in env // {{ steam = (import {} {{ pkgs = pkgs // {{ pkgsi686Linux = pkgs; }}; }}).steam-run; }}"#,
                fhs_nix.display(),
                fhs_nix.display()
            ),
        );
        let f = f.to_str().unwrap();
        let out = env.ok(&["build", f]);
        let launcher = PathBuf::from(out.trim()).join("bin/example-env");
        let script = std::fs::read_to_string(&launcher).unwrap();
        assert!(script.starts_with("#!/bin/sh\n") && script.contains("env run "), "{script}");
        // The tree: zlib in /usr/lib, busybox's tools in /usr/bin, our ld.so.cache.
        let tree = env.ok(&["build", f, "-A", "fhs", "--no-out-link"]);
        let tree = PathBuf::from(tree.trim());
        assert!(tree.join("fhsenv.toml").is_file());
        assert!(tree.join("usr/lib/libz.so.1").exists() && tree.join("usr/bin/ls").exists());
        assert!(tree.join("etc/ld.so.cache").is_file());
        // The references keep the packages alive.
        let refs = env.ok(&["store", "closure", tree.to_str().unwrap()]);
        assert!(refs.contains("-zlib") && refs.contains("-busybox"), "{refs}");
        // Building .env fails with nixpkgs' message.
        let err = text(&env.run(&["build", f, "-A", "env"]));
        assert!(err.contains("intended for interactive nix-shell sessions"), "{err}");
        if !fhskit_can_enter(&env) {
            return;
        }
        // fhskit shell -A env enters the env; --run goes to the env's shell; the profile is sourced.
        let out = env.ok(&[
            "shell",
            f,
            "-A",
            "env",
            "--run",
            "ls /usr/lib/libz.so.1; readlink /usr/bin/ls; echo $FROM_PROFILE$IN_NIX_SHELL",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[0], "/usr/lib/libz.so.1");
        assert!(lines[1].ends_with("-busybox/usr/bin/ls"), "ls comes from the busybox package: {out}");
        assert_eq!(lines[2], "yesimpure");
        // steam-run: the same machinery with Steam's library set (those the set has) and its usage message.
        let steam = env.ok(&["build", f, "-A", "steam", "--no-out-link"]);
        let steam_run = PathBuf::from(steam.trim()).join("bin/steam-run");
        if env.user == build_support::User::Root {
            let out = Command::new(&steam_run)
                .env("FHSKIT", &env.fhskit)
                .env("FHSKIT_STORE", env.store_base())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: steam-run command-to-run args..."));
            let out = Command::new(&steam_run)
                .args(["sh", "-c", "ls /usr/lib/libz.so.1; echo $LD_LIBRARY_PATH"])
                .env("FHSKIT", &env.fhskit)
                .env("FHSKIT_STORE", env.store_base())
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.starts_with("/usr/lib/libz.so.1\n") && stdout.contains("/lib64:/lib32"),
                "{stdout}"
            );
        }
        // The launcher enters it too (fhskit from FHSKIT), running runScript with the arguments.
        let out = Command::new(&launcher)
            .args(["-c", "echo launched; ls /usr/lib/libz.so.1"])
            .env("FHSKIT", &env.fhskit)
            .env("FHSKIT_STORE", env.store_base())
            .output()
            .unwrap();
        if env.user == build_support::User::Root {
            assert!(out.status.success(), "{}", text(&out));
            assert_eq!(String::from_utf8_lossy(&out.stdout), "launched\n/usr/lib/libz.so.1\n");
        }
    });
}

/// Whether fhsenv can enter an env as the test's user here (user namespaces); reports when not.
fn fhskit_can_enter(env: &Env) -> bool {
    let out = env.run(&["env", "doctor"]);
    if out.status.success() {
        return true;
    }
    test_support::unmet(format!(
        "entering FHS envs as {:?}: {}",
        env.user,
        String::from_utf8_lossy(&out.stdout)
    ));
    false
}

#[test]
fn a_derivation_with_an_fhs_root_gets_it_at_the_shells_root() {
    each_user(|env| {
        let Some(bash) = host_bash() else { return };
        let root = env.work().join("root");
        if !zlib_tree(&root) {
            return;
        }
        program_tree(&root, &bash);
        busybox_tree(&env.work().join("bbtools"));
        chmod_r(&env.work());
        if !fhskit_can_enter(&env) {
            return;
        }
        // The tree (a plain union of package trees, as the stdenv's fhskitRoot) shows at / inside the shell, with
        // its bash running the rc file; the stdenv's setup is sourced there.
        env.nix(
            "shell",
            r#"mkWith {
              fhskitRoot = "${./root}";
              tools = "${./bbtools}";
              stdenv = mk "stdenv" "mkdir $out; echo 'export FROM_SETUP=1' > $out/setup";
            } "rooted" "exit 1""#,
        );
        let out = env.ok(&[
            "shell",
            "--run",
            "echo $FROM_SETUP; echo $BASH; test -e /usr/lib/x86_64-linux-gnu/libz.so.1 && echo libz-at-root; $tools/usr/bin/ls /usr/lib/libz.so.1",
        ]);
        assert_eq!(out, "1\n/usr/bin/bash\nlibz-at-root\n/usr/lib/libz.so.1\n");
        // The tree has no `rm`: fhskit removes the shell's directory after it.
        let tmp = env.work().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let out = env
            .command()
            .env("TMPDIR", &tmp)
            .args(["shell", "--run", "test -f \"$stdenv/setup\""])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "the shell's files are left in {}",
            tmp.display()
        );
    });
}

#[test]
fn profile_install_builds_attributes_of_a_file() {
    each_user(|env| {
        // nix-env -f FILE -iA ATTR: the attribute is built, then installed as a new generation.
        let f = env.nix(
            "tools",
            r#"{ greeting ? "hi" }: {
              hello = mk "hello" "mkdir -p $out/bin; printf '#!/bin/sh\necho ${greeting}\n' > $out/bin/hello; chmod +x $out/bin/hello";
              broken = mk "broken" "exit 3";
            }"#,
        );
        let f = f.to_str().unwrap();
        let profile = env.work().join("profile");
        let p = profile.to_str().unwrap();
        env.ok(&[
            "profile",
            "--profile",
            p,
            "install",
            "-f",
            f,
            "-A",
            "hello",
            "--argstr",
            "greeting",
            "hello-there",
        ]);
        let out = Command::new(profile.join("bin/hello")).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-there\n");
        let gens = env.ok(&["profile", "--profile", p, "list-generations"]);
        assert_eq!(gens.lines().count(), 1, "{gens}");
        // A failing build installs nothing and exits as fhskit build does.
        let err = env.fails(&["profile", "--profile", p, "install", "-f", f, "-A", "broken"], 100);
        assert!(err.contains("broken"), "{err}");
        assert_eq!(env.ok(&["profile", "--profile", p, "list-generations"]).lines().count(), 1);
        // An attribute the file lacks is Nix's evaluation error.
        let err = env.fails(&["profile", "--profile", p, "install", "-f", f, "-A", "nope"], 1);
        assert!(err.contains("nope"), "{err}");
    });
}

#[test]
fn env_toml_takes_package_names_and_roots_what_it_uses() {
    each_user(|env| {
        let (z, b) = (env.work().join("pz"), env.work().join("pb"));
        if !zlib_tree(&z) {
            return;
        }
        busybox_tree(&b);
        // A stand-in <nixpkgs>: zlib depends on busybox (the `deps` attribute, as the Debian packages have it);
        // buildFHSEnvClosure is the real one from pkgs/nixpkgs.
        let fhs_nix = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkgs/nixpkgs/build-fhsenv/default.nix");
        let fhs_nix = std::fs::canonicalize(fhs_nix).unwrap();
        let pkgs = env.work().join("fakepkgs");
        std::fs::create_dir_all(&pkgs).unwrap();
        let body = format!(
            r#"{{ ... }}: let
              bb = builtins.storePath "{}";
              mkWith = a: n: s: derivation ({{ name = n; system = builtins.currentSystem; builder = "${{bb}}/bin/sh"; args = [ "-c" s ]; }} // a);
              self = {{
                busybox = mkWith {{ }} "busybox-pkg" "${{bb}}/bin/busybox cp -a ${{../pb}} $out";
                debian.zlib1g = mkWith {{ deps = [ self.busybox ]; }} "zlib-pkg" "${{bb}}/bin/busybox cp -a ${{../pz}} $out";
                zlib = self.debian.zlib1g;
                pkgsi686Linux = self;
                inherit (import {} {{ pkgs = self; }}) buildFHSEnvClosure;
              }};
            in self"#,
            env.busybox,
            fhs_nix.display()
        );
        std::fs::write(pkgs.join("default.nix"), body).unwrap();
        std::fs::write(
            env.work().join("env.toml"),
            "name = \"named\"\npackages = [\"debian.zlib1g\"]\nrun = [\"sh\"]\n",
        )
        .unwrap();
        chmod_r(&env.work());
        let with_path = |args: &[&str]| {
            let out = env.command().env("NIX_PATH", "nixpkgs=./fakepkgs").args(args).output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), text(&out))
        };
        let (code, out, all) = with_path(&["env", "build", "env.toml"]);
        assert_eq!(code, Some(0), "{all}");
        let tree = PathBuf::from(out.trim());
        assert!(tree.join("usr/lib/libz.so.1").exists(), "{all}");
        assert!(
            std::fs::read_link(tree.join("usr/bin/ls")).unwrap().to_string_lossy().contains("-busybox-pkg/")
        );
        // The packages are roots: a collection keeps them and the env keeps working.
        let (code, _, all) = with_path(&["store", "gc"]);
        assert_eq!(code, Some(0), "{all}");
        assert!(tree.join("usr/lib/libz.so.1").exists(), "gc removed a package of a built env");
        if fhskit_can_enter(&env) {
            let (code, out, all) =
                with_path(&["env", "run", "env.toml", "--", "sh", "-c", "ls /usr/lib/libz.so.1"]);
            assert_eq!(code, Some(0), "{all}");
            assert_eq!(out, "/usr/lib/libz.so.1\n");
        }
        // A name <nixpkgs> lacks is an error naming it and the file.
        std::fs::write(env.work().join("bad.toml"), "name = \"bad\"\npackages = [\"nosuch\"]\n").unwrap();
        let (code, _, all) = with_path(&["env", "build", "bad.toml"]);
        assert_eq!(code, Some(1), "{all}");
        assert!(all.contains("bad.toml") && all.contains("nosuch"), "{all}");
    });
}
