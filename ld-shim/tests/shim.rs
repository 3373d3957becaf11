//! End-to-end tests of the `ld-shim` executable: C fixtures from `tests/fixtures/shim-*.c`, compiled with `cc` and
//! `-Wl,--dynamic-linker=<the built shim>`, run with and without nix-ld's variables. Each feature is shown to fail
//! without the shim's help and to work with it.
//!
//! Contents: loader choice; library path (DT_NEEDED, dlopen, no leak into the program or its children, merging
//! with the user's LD_LIBRARY_PATH); argv/envp/auxv intact; error cases; the config file fallback and the inserted
//! environment slot; setuid (AT_SECURE); direct mode; the 32-bit shim; the executable itself; a system binary
//! running through the shim at the FHS loader path (root, mount namespace).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SHIM: &str = env!("LD_SHIM_BIN");
const SHIM_I686: Option<&str> = option_env!("LD_SHIM_BIN_I686");
const SHIM_AARCH64: Option<&str> = option_env!("LD_SHIM_BIN_AARCH64");
const AARCH64_LD: &str = "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1";
const HOST_LD: &str = "/lib64/ld-linux-x86-64.so.2";
const HOST_LD_I686: &str = "/lib/ld-linux.so.2";
const DEFAULT_LOADER: &str = "/run/current-system/sw/share/nix-ld/lib/ld.so";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

/// A fresh directory under cargo's per-package temporary directory (inside the target dir, so nothing leaks).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn cc(args: &[&OsStr]) -> Result<(), String> {
    let output =
        Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into())).args(args).output().unwrap();
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

/// The compiled fixtures of one test.
struct Programs {
    dir: PathBuf,
    lib_dir: PathBuf,
    probe: PathBuf,
    needs_lib: PathBuf,
    dlopen: PathBuf,
    /// `shim-needs-lib` with the ordinary system loader as interpreter (a child that must not find the library).
    plain_needs_lib: PathBuf,
}

/// Compiles the fixtures into `dir` with `interpreter` as their `PT_INTERP`; `m32` for 32-bit ones.
fn compile(dir: &Path, interpreter: &str, m32: bool) -> Result<Programs, String> {
    let lib_dir = dir.join("lib");
    fs::create_dir_all(&lib_dir).unwrap();
    let bits: &[&OsStr] = if m32 { &[OsStr::new("-m32")] } else { &[] };
    let interp = format!("-Wl,--dynamic-linker={interpreter}");
    let lib = lib_dir.join("libshimtest.so");
    let mut args: Vec<&OsStr> = bits.to_vec();
    let lib_src = fixture("shim-lib.c");
    args.extend([
        OsStr::new("-shared"),
        OsStr::new("-fPIC"),
        lib_src.as_os_str(),
        OsStr::new("-o"),
        lib.as_os_str(),
    ]);
    cc(&args)?;
    let link_dir = format!("-L{}", lib_dir.display());
    let build = |name: &str, source: &str, interp: Option<&str>, libs: &[&str]| -> Result<PathBuf, String> {
        let out = dir.join(name);
        let src = fixture(source);
        let mut args: Vec<&OsStr> = bits.to_vec();
        args.extend([src.as_os_str(), OsStr::new("-o"), out.as_os_str()]);
        if let Some(interp) = interp {
            args.push(OsStr::new(interp));
        }
        // Libraries after the sources: Debian's gcc links with --as-needed.
        args.extend(libs.iter().map(OsStr::new));
        cc(&args)?;
        Ok(out)
    };
    Ok(Programs {
        dir: dir.to_owned(),
        probe: build("probe", "shim-probe.c", Some(&interp), &[])?,
        needs_lib: build("needs-lib", "shim-needs-lib.c", Some(&interp), &[&link_dir, "-lshimtest"])?,
        dlopen: build("dlopen", "shim-dlopen.c", Some(&interp), &["-ldl"])?,
        plain_needs_lib: build("plain-needs-lib", "shim-needs-lib.c", None, &[&link_dir, "-lshimtest"])?,
        lib_dir,
    })
}

fn programs(name: &str) -> Programs {
    compile(&scratch(name), SHIM, false).expect("compile the fixtures")
}

/// Runs `program` with exactly `env` (plus PATH).
/// Copies with `cp` in a child process. A file this multi-threaded test process writes itself would be open for
/// writing in any child another thread forks meanwhile, and executing it then fails with ETXTBSY.
fn copy_file(from: &Path, to: &Path) {
    let out = Command::new("cp").arg(from).arg(to).output().unwrap();
    assert!(
        out.status.success(),
        "cp {} {}: {}",
        from.display(),
        to.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Runs `program` with exactly `env` like [`run`], but kills it after 20 seconds, so a hang fails the test.
fn run_bounded(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("{} hung with {env:?}: {}", program.display(), stderr(&output));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

#[track_caller]
fn assert_load_error(output: &Output, path: &str, reason: &str) {
    assert_eq!(output.status.code(), Some(127), "stdout:\n{}\nstderr:\n{}", stdout(output), stderr(output));
    assert_eq!(stderr(output), format!("ld-shim: cannot load {path}: {reason}\n"));
}

#[test]
fn hello_fails_without_a_loader_and_runs_with_nix_ld() {
    let p = programs("hello");
    assert_load_error(&run(&p.probe, &[], &[]), DEFAULT_LOADER, "no such file or directory");
    let out = assert_ok(&run(&p.probe, &[], &[("NIX_LD", HOST_LD)]));
    assert!(out.starts_with("hello from the probe\n"), "{out}");
    // The per-system variable wins over NIX_LD; an empty one counts as unset; a trailing newline is dropped.
    assert_ok(&run(&p.probe, &[], &[("NIX_LD", "/nonexistent"), ("NIX_LD_x86_64_linux", HOST_LD)]));
    assert_ok(&run(&p.probe, &[], &[("NIX_LD", HOST_LD), ("NIX_LD_x86_64_linux", "")]));
    assert_ok(&run(&p.probe, &[], &[("NIX_LD", &format!("{HOST_LD}\n"))]));
}

#[test]
fn needed_library_is_found_through_nix_ld_library_path_and_hidden_from_children() {
    let p = programs("needed");
    let lib_dir = p.lib_dir.to_str().unwrap();
    let failed = run(&p.needs_lib, &[], &[("NIX_LD", HOST_LD)]);
    assert_eq!(failed.status.code(), Some(127));
    assert!(stderr(&failed).contains("libshimtest.so"), "{}", stderr(&failed));
    assert_eq!(
        assert_ok(&run(&p.needs_lib, &[], &[("NIX_LD", HOST_LD), ("NIX_LD_LIBRARY_PATH", lib_dir)])),
        "answer=42\n"
    );
    let per_system = [
        ("NIX_LD", HOST_LD),
        ("NIX_LD_LIBRARY_PATH", "/nonexistent"),
        ("NIX_LD_LIBRARY_PATH_x86_64_linux", lib_dir),
    ];
    assert_eq!(assert_ok(&run(&p.needs_lib, &[], &per_system)), "answer=42\n");

    // The program and its children see the launch environment, not the injected LD_LIBRARY_PATH: a child that
    // needs the library (through the ordinary loader) cannot find it.
    let child =
        format!("echo child LD_LIBRARY_PATH=${{LD_LIBRARY_PATH-unset}}; {}", p.plain_needs_lib.display());
    let env = [("NIX_LD", HOST_LD), ("NIX_LD_LIBRARY_PATH", lib_dir)];
    let out = assert_ok(&run(&p.probe, &["child", &child], &env));
    assert!(out.contains("env LD_LIBRARY_PATH=(unset)\n"), "{out}");
    assert!(out.contains(&format!("env NIX_LD_LIBRARY_PATH={lib_dir}\n")), "{out}");
    assert!(out.contains("child LD_LIBRARY_PATH=unset\n"), "{out}");
    assert!(out.contains("child_status=127\n"), "{out}");

    // A user LD_LIBRARY_PATH is kept first for the loader and restored unchanged for the program.
    let env = [("NIX_LD", HOST_LD), ("NIX_LD_LIBRARY_PATH", lib_dir), ("LD_LIBRARY_PATH", "/user/lib")];
    assert_eq!(assert_ok(&run(&p.needs_lib, &[], &env)), "answer=42\n");
    let out = assert_ok(&run(&p.probe, &["child", "echo child LD_LIBRARY_PATH=$LD_LIBRARY_PATH"], &env));
    assert!(out.contains("env LD_LIBRARY_PATH=/user/lib\n"), "{out}");
    assert!(out.contains("child LD_LIBRARY_PATH=/user/lib\n"), "{out}");
}

#[test]
fn dlopen_after_the_environment_is_restored_still_uses_the_library_path() {
    let p = programs("dlopen");
    let failed = run(&p.dlopen, &[], &[("NIX_LD", HOST_LD)]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(stdout(&failed).starts_with("dlopen failed"), "{}", stdout(&failed));
    let env = [("NIX_LD", HOST_LD), ("NIX_LD_LIBRARY_PATH", p.lib_dir.to_str().unwrap())];
    assert_eq!(assert_ok(&run(&p.dlopen, &[], &env)), "answer=42\n");
}

#[test]
fn argv_envp_and_auxv_reach_the_program_intact() {
    let p = programs("intact");
    let env = [("NIX_LD", HOST_LD), ("NIX_LD_LIBRARY_PATH", "/x"), ("A", "1"), ("B", "two words"), ("C", "")];
    let out = assert_ok(&run(&p.probe, &["one", "two words", ""], &env));
    let probe = p.probe.to_str().unwrap();
    for line in [
        "argc=4".to_owned(),
        format!("argv[0]={probe}"),
        "argv[1]=one".to_owned(),
        "argv[2]=two words".to_owned(),
        "argv[3]=".to_owned(),
        "env A=1".to_owned(),
        "env B=two words".to_owned(),
        "env C=".to_owned(),
        format!("env NIX_LD={HOST_LD}"),
        "env NIX_LD_LIBRARY_PATH=/x".to_owned(),
        "env LD_LIBRARY_PATH=(unset)".to_owned(),
        format!("execfn={probe}"),
        format!("exe={probe}"),
        "secure=0".to_owned(),
        // AT_ENTRY pointed at the shim's trampoline while ld.so ran; the trampoline put the real entry back.
        "entry_is_start=1".to_owned(),
        "base_nonzero=1".to_owned(),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn unusable_loaders_get_one_line_and_exit_127() {
    let p = programs("errors");
    let dir = &p.dir;
    fs::write(dir.join("script"), "#!/bin/sh\n").unwrap();
    fs::write(dir.join("short"), b"\x7fELF\x02\x01").unwrap();
    let cases: Vec<(String, &str)> = vec![
        (SHIM.to_owned(), "it is ld-shim itself, not the real loader"),
        ("/nonexistent/ld.so".to_owned(), "no such file or directory"),
        (dir.join("script").display().to_string(), "not an ELF file"),
        (dir.join("short").display().to_string(), "file is truncated"),
        (dir.display().to_string(), "not a regular file"),
        (HOST_LD_I686.to_owned(), "wrong ELF class (a 32-bit file; this shim is 32-bit)"),
        (p.probe.display().to_string(), "not a dynamic loader (ELF type is not ET_DYN)"),
    ];
    for (loader, reason) in cases {
        if loader == HOST_LD_I686 && !Path::new(HOST_LD_I686).exists() {
            continue;
        }
        let reason = reason.replace("this shim is 32-bit", "this shim is 64-bit");
        // The probe is a PIE (ET_DYN) on Debian; a non-PIE executable shows the ET_DYN check.
        if loader == p.probe.display().to_string() {
            continue;
        }
        assert_load_error(&run(&p.probe, &[], &[("NIX_LD", &loader)]), &loader, &reason);
    }
    // What crashed or hung before: a FIFO (opening it waited for a writer), a PIE program, the program itself
    // through /proc/self/exe, glibc's executable libc.so.6, and a plain library (entry 0). Each is the same one-line
    // error, in bounded time.
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let libc = fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    let program = "it is a program with an interpreter of its own, not a dynamic loader";
    let cases: Vec<(String, &str)> = vec![
        (fifo.display().to_string(), "not a regular file"),
        (p.probe.display().to_string(), program),
        ("/proc/self/exe".to_owned(), program),
        (libc.display().to_string(), program),
        (
            p.lib_dir.join("libshimtest.so").display().to_string(),
            "no entry point in an executable segment (a library, not a dynamic loader)",
        ),
    ];
    for (loader, reason) in cases {
        assert_load_error(&run_bounded(&p.probe, &[], &[("NIX_LD", &loader)]), &loader, reason);
        // Run directly (`ld-shim PROGRAM`), the shim checks the loader the same way before executing it.
        // There /proc/self/exe is the shim.
        let reason =
            if loader == "/proc/self/exe" { "it is ld-shim itself, not the real loader" } else { reason };
        let probe = p.probe.to_str().unwrap();
        assert_load_error(&run_bounded(Path::new(SHIM), &[probe], &[("NIX_LD", &loader)]), &loader, reason);
    }
    // A copy of the shim is caught too (the note, not the inode, marks it).
    let copy = dir.join("copy-of-shim");
    copy_file(Path::new(SHIM), &copy);
    let copy = copy.to_str().unwrap();
    assert_load_error(
        &run(&p.probe, &[], &[("NIX_LD", copy)]),
        copy,
        "it is ld-shim itself, not the real loader",
    );
    // A position-dependent executable is not a loader.
    let exec = dir.join("non-pie");
    cc(&[
        fixture("shim-lib.c").as_os_str(),
        OsStr::new("-nostdlib"),
        OsStr::new("-no-pie"),
        OsStr::new("-Wl,-e,shim_answer"),
        OsStr::new("-o"),
        exec.as_os_str(),
    ])
    .unwrap();
    let exec = exec.to_str().unwrap();
    assert_load_error(
        &run(&p.probe, &[], &[("NIX_LD", exec)]),
        exec,
        "not a dynamic loader (ELF type is not ET_DYN)",
    );
}

/// A root as `fhskit shim install --root` lays it out: the shim at the FHS loader path, the config, the loader
/// symlink and a library directory. Returns (root, programs compiled against the installed shim path).
fn install_tree(name: &str, config: impl FnOnce(&Path) -> String) -> (PathBuf, Programs) {
    let dir = scratch(name);
    let root = dir.join("root");
    fs::create_dir_all(root.join("lib64")).unwrap();
    fs::create_dir_all(root.join("etc/fhskit")).unwrap();
    fs::create_dir_all(root.join("var/lib/fhskit/ld-shim/x86_64-linux/lib")).unwrap();
    let shim = root.join("lib64/ld-linux-x86-64.so.2");
    copy_file(Path::new(SHIM), &shim);
    symlink(HOST_LD, root.join("var/lib/fhskit/ld-shim/x86_64-linux/ld.so")).unwrap();
    let programs = compile(&dir.join("programs"), shim.to_str().unwrap(), false).unwrap();
    symlink(
        programs.lib_dir.join("libshimtest.so"),
        root.join("var/lib/fhskit/ld-shim/x86_64-linux/lib/libshimtest.so"),
    )
    .unwrap();
    fs::write(root.join("etc/fhskit/ld-shim-x86_64-linux.conf"), config(&root)).unwrap();
    (root, programs)
}

const CONFIG: &str = "# test config\nloader=/var/lib/fhskit/ld-shim/x86_64-linux/ld.so\n\
                      library-path=/missing/dir:/var/lib/fhskit/ld-shim/x86_64-linux/lib\n";

#[test]
fn config_file_serves_programs_that_cleared_their_environment() {
    let (root, p) = install_tree("config", |_| CONFIG.to_owned());
    assert_eq!(assert_ok(&run(&p.needs_lib, &[], &[])), "answer=42\n");
    // Missing directories are skipped (logged at debug level), not passed to the loader.
    let out = run(&p.needs_lib, &[], &[("NIX_LD_LOG", "debug")]);
    let expected =
        format!("library path {}/var/lib/fhskit/ld-shim/x86_64-linux/lib (from config)", root.display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("skipping missing library directory {}/missing/dir", root.display()))
    );
    // The environment still wins over the config.
    assert_load_error(
        &run(&p.needs_lib, &[], &[("NIX_LD", "/nonexistent")]),
        "/nonexistent",
        "no such file or directory",
    );
    let failed = run(&p.needs_lib, &[], &[("NIX_LD_LIBRARY_PATH", "/nonexistent")]);
    assert_eq!(failed.status.code(), Some(127), "{}", stderr(&failed));

    // No NIX_LD* variable and no LD_LIBRARY_PATH: the shim inserts a slot, which the program sees emptied.
    let child =
        format!("echo child LD_LIBRARY_PATH=${{LD_LIBRARY_PATH-unset}}; {}", p.plain_needs_lib.display());
    let out = assert_ok(&run(&p.probe, &["child", &child], &[("A", "1"), ("B", "2")]));
    assert!(out.contains("env LD_LIBRARY_PATH=\n"), "{out}");
    assert!(out.contains("env A=1\n") && out.contains("env B=2\n"), "{out}");
    assert!(out.contains("child LD_LIBRARY_PATH=\n"), "{out}");
    assert!(out.contains("child_status=127\n"), "{out}");
    assert!(out.contains("entry_is_start=1\n"), "{out}");
    // With NIX_LD set (loader from the environment, library path from the config) its slot is borrowed instead.
    let out = assert_ok(&run(&p.probe, &["child", &child], &[("NIX_LD", HOST_LD)]));
    assert!(out.contains("env LD_LIBRARY_PATH=(unset)\n"), "{out}");
    assert!(out.contains(&format!("env NIX_LD={HOST_LD}\n")), "{out}");
    assert!(out.contains("child LD_LIBRARY_PATH=unset\n"), "{out}");

    // Without the config, the compiled-in default applies and fails here.
    fs::remove_file(root.join("etc/fhskit/ld-shim-x86_64-linux.conf")).unwrap();
    assert_load_error(&run(&p.needs_lib, &[], &[]), DEFAULT_LOADER, "no such file or directory");
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn setuid_programs_ignore_the_environment() {
    if !is_root() || !have("setpriv") {
        test_support::unmet("needs root and setpriv to make a setuid program and run it as uid 65534");
        return;
    }
    let (root, p) = install_tree("setuid", |_| CONFIG.to_owned());
    // Everything must be reachable by uid 65534.
    let mut dir = root.clone();
    while dir.pop() && dir != Path::new("/") {
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode | 0o755)).unwrap();
    }
    for entry in [&root, &p.dir, &p.lib_dir] {
        Command::new("chmod").args(["-R", "a+rX"]).arg(entry).status().unwrap();
    }
    fs::set_permissions(&p.probe, fs::Permissions::from_mode(0o4755)).unwrap();
    let run_as_nobody = |env: &[(&str, &str)]| {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&p.probe);
        command.env_clear().env("PATH", "/usr/bin:/bin").envs(env.iter().copied()).output().unwrap()
    };
    let env = [
        ("A", "1"),
        ("NIX_LD", "/nonexistent"),
        ("NIX_LD_LIBRARY_PATH", "/x"),
        ("B", "2"),
        ("C", "3"),
        ("NIX_LD_LOG", "trace"),
    ];
    let out = run_as_nobody(&env);
    let text = assert_ok(&out);
    assert!(text.contains("secure=1\n"), "{text}");
    // Nothing was injected, so glibc's secure-mode clean-up cannot shuffle entries: every variable survives.
    for line in
        ["env A=1\n", "env B=2\n", "env C=3\n", "env NIX_LD=/nonexistent\n", "env NIX_LD_LIBRARY_PATH=/x\n"]
    {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_eq!(stderr(&out), "", "NIX_LD_LOG must be ignored too");
    // The same environment without setuid uses NIX_LD and fails.
    fs::set_permissions(&p.probe, fs::Permissions::from_mode(0o755)).unwrap();
    assert_load_error(&run_as_nobody(&env[..5]), "/nonexistent", "no such file or directory");
    // A config file others may write does not count in a setuid process.
    fs::set_permissions(&p.probe, fs::Permissions::from_mode(0o4755)).unwrap();
    let config = root.join("etc/fhskit/ld-shim-x86_64-linux.conf");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_as_nobody(&env);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("not owned by root or writable by others"), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .ends_with(&format!("ld-shim: cannot load {DEFAULT_LOADER}: no such file or directory\n"))
    );
}

#[test]
fn direct_mode_runs_a_program_like_ld_so_without_leaking_the_path() {
    let p = programs("direct");
    let shim = Path::new(SHIM);
    let needs = p.plain_needs_lib.to_str().unwrap();
    let lib_dir = p.lib_dir.to_str().unwrap();
    assert_eq!(run(shim, &[needs], &[("NIX_LD", HOST_LD)]).status.code(), Some(127));
    assert_eq!(
        assert_ok(&run(shim, &[needs], &[("NIX_LD", HOST_LD), ("NIX_LD_LIBRARY_PATH", lib_dir)])),
        "answer=42\n"
    );
    let env = [("NIX_LD", HOST_LD), ("NIX_LD_LIBRARY_PATH", lib_dir), ("LD_LIBRARY_PATH", "/user/lib")];
    assert_eq!(assert_ok(&run(shim, &[needs], &env)), "answer=42\n");
    let probe = p.probe.to_str().unwrap();
    let out = assert_ok(&run(
        shim,
        &[probe, "child", "echo child LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}"],
        &env[..2],
    ));
    assert!(out.contains("env LD_LIBRARY_PATH=(unset)\n"), "{out}");
    assert!(out.contains("child LD_LIBRARY_PATH=unset\n"), "{out}");
    assert!(out.contains(&format!("argv[0]={probe}\n")), "{out}");
    // Loader options pass through, as with ld.so.
    let listed = assert_ok(&run(shim, &["--list", needs], &env[..2]));
    assert!(listed.contains(&format!("libshimtest.so => {lib_dir}/libshimtest.so")), "{listed}");
    // The loop guard holds in direct mode too.
    assert_load_error(
        &run(shim, &[needs], &[("NIX_LD", SHIM)]),
        SHIM,
        "it is ld-shim itself, not the real loader",
    );
    // Without arguments it describes itself.
    let out = assert_ok(&run(shim, &[], &[("NIX_LD", HOST_LD)]));
    assert!(out.contains(&format!("loader: {HOST_LD} (from NIX_LD)")), "{out}");
    assert!(out.contains("NIX_LD_LIBRARY_PATH_x86_64_linux"), "{out}");
}

fn i686_ready() -> Option<&'static str> {
    let Some(shim) = SHIM_I686 else {
        test_support::unmet(
            "the 32-bit shim was not built (the i686-unknown-linux-gnu Rust target is not installed)",
        );
        return None;
    };
    if !Path::new(HOST_LD_I686).exists() {
        test_support::unmet(format!("no 32-bit loader at {HOST_LD_I686}"));
        return None;
    }
    Some(shim)
}

#[test]
fn the_32_bit_shim_loads_32_bit_programs() {
    let Some(shim) = i686_ready() else { return };
    let p = match compile(&scratch("i686"), shim, true) {
        Ok(p) => p,
        Err(err) => {
            test_support::unmet(format!("cc -m32 cannot build the fixtures: {err}"));
            return;
        }
    };
    let lib_dir = p.lib_dir.to_str().unwrap();
    assert_load_error(&run(&p.needs_lib, &[], &[]), DEFAULT_LOADER, "no such file or directory");
    assert_eq!(run(&p.needs_lib, &[], &[("NIX_LD_i686_linux", HOST_LD_I686)]).status.code(), Some(127));
    let env =
        [("NIX_LD", "/nonexistent"), ("NIX_LD_i686_linux", HOST_LD_I686), ("NIX_LD_LIBRARY_PATH", lib_dir)];
    assert_eq!(assert_ok(&run(&p.needs_lib, &[], &env)), "answer=42\n");
    assert_eq!(assert_ok(&run(&p.dlopen, &[], &env)), "answer=42\n");
    let child =
        format!("echo child LD_LIBRARY_PATH=${{LD_LIBRARY_PATH-unset}}; {}", p.plain_needs_lib.display());
    let out = assert_ok(&run(&p.probe, &["child", &child], &env));
    assert!(out.contains("env LD_LIBRARY_PATH=(unset)\n"), "{out}");
    assert!(out.contains("child LD_LIBRARY_PATH=unset\n") && out.contains("child_status=127\n"), "{out}");
    assert!(out.contains("entry_is_start=1\n"), "{out}");
    assert_load_error(
        &run(&p.probe, &[], &[("NIX_LD", HOST_LD)]),
        HOST_LD,
        "wrong ELF class (a 64-bit file; this shim is 32-bit)",
    );
}

#[test]
fn the_aarch64_shim_loads_aarch64_programs_under_qemu() {
    let Some(shim) = SHIM_AARCH64 else {
        test_support::unmet(
            "the aarch64 shim was not built (no aarch64-unknown-linux-gnu target or cross linker)",
        );
        return;
    };
    if !have("qemu-aarch64") || !have("aarch64-linux-gnu-gcc") || !Path::new(AARCH64_LD).exists() {
        test_support::unmet(format!("needs qemu-aarch64, aarch64-linux-gnu-gcc and {AARCH64_LD}"));
        return;
    }
    let dir = scratch("aarch64");
    let probe = dir.join("probe");
    let interp = format!("-Wl,--dynamic-linker={shim}");
    let status = Command::new("aarch64-linux-gnu-gcc")
        .arg(fixture("shim-probe.c"))
        .arg("-o")
        .arg(&probe)
        .arg(&interp)
        .status()
        .unwrap();
    assert!(status.success());
    let qemu = |env: &[(&str, &str)]| {
        Command::new("qemu-aarch64")
            .arg(&probe)
            .args(["child", "echo child LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    assert_load_error(&qemu(&[]), DEFAULT_LOADER, "no such file or directory");
    let libs = "/usr/aarch64-linux-gnu/lib";
    let out = assert_ok(&qemu(&[("NIX_LD_aarch64_linux", AARCH64_LD), ("NIX_LD_LIBRARY_PATH", libs)]));
    assert!(out.contains("hello from the probe\n"), "{out}");
    assert!(out.contains("env LD_LIBRARY_PATH=(unset)\n"), "{out}");
    assert!(out.contains("child LD_LIBRARY_PATH=unset\n"), "{out}");
    assert!(out.contains("entry_is_start=1\n"), "{out}");
    assert_load_error(
        &qemu(&[("NIX_LD", HOST_LD)]),
        HOST_LD,
        "wrong machine (built for another architecture)",
    );
}

/// Size, relocations, no interpreter of its own, and the note that marks it.
fn check_executable(path: &str) {
    let bytes = fs::read(path).unwrap();
    assert!(bytes.len() <= 32 * 1024, "{path} is {} bytes, over 32 KiB", bytes.len());
    assert!(ld_shim::elf::is_shim(&bytes), "{path} lacks the ld-shim note");
    let readelf = Command::new("readelf").args(["-lrW", path]).output().unwrap();
    let text = stdout(&readelf);
    assert!(!text.contains("INTERP"), "{text}");
    let relocations: Vec<&str> = text
        .lines()
        .filter(|l| ["R_X86_64_", "R_386_", "R_AARCH64_"].iter().any(|kind| l.contains(kind)))
        .collect();
    assert!(!relocations.is_empty());
    assert!(
        relocations.iter().all(|l| l.contains("_RELATIVE")),
        "only relative relocations expected:\n{text}"
    );
    // No big static reservation (nix-ld keeps a 5 MiB stack in .bss): everything the shim maps, file contents and
    // zero-filled memory together, stays small.
    let memory: u64 = text
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD "))
        .map(|l| {
            u64::from_str_radix(l.split_whitespace().nth(5).unwrap().trim_start_matches("0x"), 16).unwrap()
        })
        .sum();
    assert!(memory > 0 && memory <= 128 * 1024, "{path} maps {memory} bytes:\n{text}");
}

#[test]
fn the_executables_are_small_self_relocating_static_pies() {
    if !have("readelf") {
        test_support::unmet("readelf (binutils) is not installed");
        return;
    }
    check_executable(SHIM);
    assert_eq!(ld_shim::embedded::NATIVE.unwrap(), fs::read(SHIM).unwrap());
    for shim in [SHIM_I686, SHIM_AARCH64].into_iter().flatten() {
        check_executable(shim);
    }
}

#[test]
fn programs_start_through_the_shim_with_a_small_stack_limit() {
    let p = programs("small-stack");
    let lib_dir = p.lib_dir.to_str().unwrap();
    // 64 KiB of stack: the kernel's initial stack plus the shim's frames and the loader's; the library path makes
    // the shim insert an environment entry, the deepest stack work it does.
    let script = format!("ulimit -s 64 && exec {}", p.needs_lib.display());
    let out = Command::new("sh")
        .args(["-c", &script])
        .env_clear()
        .env("NIX_LD", HOST_LD)
        .env("NIX_LD_LIBRARY_PATH", lib_dir)
        .output()
        .unwrap();
    assert_eq!(assert_ok(&out), "answer=42\n");
}

#[test]
fn a_system_binary_runs_through_the_shim_at_the_fhs_loader_path() {
    if !is_root() || !have("unshare") {
        test_support::unmet("needs root and unshare for a private mount namespace");
        return;
    }
    let dir = scratch("mountns");
    // The real loader must stay reachable once the shim covers its path.
    let real = dir.join("ld.so");
    copy_file(&fs::canonicalize(HOST_LD).unwrap(), &real);
    let script =
        format!("mount --bind {SHIM} {HOST_LD} && NIX_LD={} /bin/echo through the shim", real.display());
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    if !out.status.success() && stderr(&out).contains("Operation not permitted") {
        test_support::unmet(format!("mount namespaces are not permitted here: {}", stderr(&out)));
        return;
    }
    assert_eq!(assert_ok(&out), "through the shim\n");
    let script = format!("mount --bind {SHIM} {HOST_LD} && /bin/true");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(stderr(&out), format!("ld-shim: cannot load {DEFAULT_LOADER}: no such file or directory\n"));
}
