//! End-to-end tests of `fhskit shim install|status|uninstall` under a `--root` in a temporary directory: programs
//! whose interpreter `fhskit patchelf` set to the root's loader path fail before the install, run after it with an
//! empty environment (loader and libraries from the config), and fail again after the uninstall. Also: refusing to
//! replace a real loader, `--force` with backup and restore, symlinks inside the root, the library set built in the
//! store from declared packages (a fake dpkg root, offline), the 32-bit shim, the aarch64 shim under qemu, bad
//! input, and (as root) an install at the real `/lib64` path inside a mount namespace.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FHSKIT: &str = env!("CARGO_BIN_EXE_fhskit");
const HOST_LD: &str = "/lib64/ld-linux-x86-64.so.2";
const HOST_LD_I686: &str = "/lib/ld-linux.so.2";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim-install").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn cc(args: &[&OsStr]) -> Result<(), String> {
    let output =
        Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into())).args(args).output().unwrap();
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

/// Points `program`'s `PT_INTERP` at `interpreter` with `fhskit patchelf` (patchelf-rs), as a user would fix a
/// downloaded binary by hand; the shim install then serves it.
fn set_interpreter(program: &Path, interpreter: &Path) {
    let out =
        fhskit(&[os("patchelf"), os("--set-interpreter"), interpreter.as_os_str(), program.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = fhskit(&[os("patchelf"), os("--print-interpreter"), program.as_os_str()]);
    assert_eq!(text(&out.stdout).trim_end(), interpreter.to_str().unwrap());
}

/// Builds `libshimtest.so` into `dir/lib` and `shim-needs-lib` with `interpreter`; returns (program, lib dir).
fn build(dir: &Path, interpreter: &Path, m32: bool) -> Result<(PathBuf, PathBuf), String> {
    let lib_dir = dir.join("lib");
    fs::create_dir_all(&lib_dir).unwrap();
    let bits: Vec<&OsStr> = if m32 { vec![OsStr::new("-m32")] } else { vec![] };
    let lib = lib_dir.join("libshimtest.so");
    let lib_src = fixture("shim-lib.c");
    let mut args = bits.clone();
    args.extend([
        OsStr::new("-shared"),
        OsStr::new("-fPIC"),
        lib_src.as_os_str(),
        OsStr::new("-o"),
        lib.as_os_str(),
    ]);
    cc(&args)?;
    let program = dir.join("needs-lib");
    let src = fixture("shim-needs-lib.c");
    let link_dir = format!("-L{}", lib_dir.display());
    let mut args = bits;
    args.extend([src.as_os_str(), OsStr::new("-o"), program.as_os_str()]);
    args.extend([OsStr::new(&link_dir), OsStr::new("-lshimtest")]);
    cc(&args)?;
    set_interpreter(&program, interpreter);
    Ok((program, lib_dir))
}

/// Copies the file or directory `host` into `root` at `inner` (with `cp` in a child process, see `copy_file`'s
/// reason in the ld-shim tests) and returns `inner`: `--loader` and `--lib-dir` name paths inside the root.
fn put_in_root<'a>(root: &Path, host: &Path, inner: &'a str) -> &'a str {
    let dest = root.join(&inner[1..]);
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let out = Command::new("cp").arg("-rL").arg(host).arg(&dest).output().unwrap();
    assert!(out.status.success(), "cp {}: {}", host.display(), text(&out.stderr));
    inner
}

/// The host's x86-64 loader, copied into `root` at Debian's path; returns that path.
fn loader_in_root(root: &Path) -> &'static str {
    put_in_root(root, Path::new(HOST_LD), "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
}

fn fhskit(args: &[&OsStr]) -> Output {
    Command::new(FHSKIT).args(args).output().unwrap()
}

fn run_empty_env(program: &Path) -> Output {
    Command::new(program).env_clear().output().unwrap()
}

/// Asserts that `program` cannot run: either the kernel finds no interpreter (exec fails with ENOENT) or the
/// interpreter it finds cannot start the program.
#[track_caller]
fn assert_does_not_run(program: &Path) {
    match Command::new(program).env_clear().output() {
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}"),
        Ok(output) => {
            assert!(!output.status.success(), "{} ran: {}", program.display(), text(&output.stdout))
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn install_runs_programs_with_an_empty_environment_and_uninstall_undoes_it() {
    let dir = scratch("roundtrip");
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    let interp = root.join("lib64/ld-linux-x86-64.so.2");
    let (program, lib_dir) = build(&dir, &interp, false).unwrap();
    // Before: the interpreter does not exist.
    assert_does_not_run(&program);

    // The loader and the library directory are paths inside the root, as programs will see them.
    let loader = loader_in_root(&root);
    let libs = put_in_root(&root, &lib_dir, "/opt/shimtest/lib");
    let args =
        [os("shim"), os("install"), os("--root"), root.as_os_str(), os("--system"), os("x86_64-linux")];
    let with_loader = [&args[..], &[os("--loader"), os(loader), os("--lib-dir"), os(libs)]].concat();
    let out = assert_ok(&fhskit(&with_loader));
    assert!(out.contains(&format!("installed the x86_64-linux shim at {}", interp.display())), "{out}");
    assert!(out.contains(&format!("loader: {}{loader}\n", root.display())), "{out}");
    assert!(out.contains("libraries: 1 in"), "{out}");
    assert!(ld_shim::elf::is_shim(&fs::read(&interp).unwrap()));
    let config = fs::read_to_string(root.join("etc/fhskit/ld-shim-x86_64-linux.conf")).unwrap();
    assert!(config.contains("loader=/var/lib/fhskit/ld-shim/x86_64-linux/ld.so\n"), "{config}");
    assert!(config.contains("library-path=/var/lib/fhskit/ld-shim/x86_64-linux/lib\n"), "{config}");
    // Relative links: they lead to the root's files from the host and with the root as `/`.
    let relative_loader = format!("../../../../..{loader}");
    assert_eq!(
        fs::read_link(root.join("var/lib/fhskit/ld-shim/x86_64-linux/ld.so")).unwrap(),
        Path::new(&relative_loader)
    );
    assert_eq!(
        fs::read_link(root.join("var/lib/fhskit/ld-shim/x86_64-linux/lib/libshimtest.so")).unwrap(),
        Path::new("../../../../../../opt/shimtest/lib/libshimtest.so")
    );
    // After: the program runs with nothing in its environment; the library comes from the installed set.
    assert_eq!(assert_ok(&run_empty_env(&program)), "answer=42\n");
    // The same tree as a container's `/`: a program naming the FHS loader path runs in a chroot of the root.
    run_in_root_as_container(&root, &program);

    let status = assert_ok(&fhskit(&[os("shim"), os("status"), os("--root"), root.as_os_str()]));
    assert!(status.contains(&format!("interpreter:  {} (ld-shim)", interp.display())), "{status}");
    assert!(status.contains(&format!("-> {relative_loader} (ok)")), "{status}");
    assert!(status.contains("libraries:    1 in"), "{status}");
    assert!(status.contains("shim reports: loader:"), "{status}");
    let json = assert_ok(&fhskit(&[os("shim"), os("status"), os("--root"), root.as_os_str(), os("--json")]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let x86_64 = json.as_array().unwrap().iter().find(|r| r["system"] == "x86_64-linux").unwrap();
    assert_eq!(x86_64["installed"], "ld-shim");
    assert_eq!(x86_64["loader_ok"], true);
    assert_eq!(x86_64["libraries"], 1);

    // Installing again (an upgrade) is allowed without --force.
    assert_ok(&fhskit(&with_loader));

    let out = assert_ok(&fhskit(&[os("shim"), os("uninstall"), os("--root"), root.as_os_str()]));
    assert!(out.contains("removed the x86_64-linux shim"), "{out}");
    assert!(!interp.exists());
    assert!(!root.join("etc/fhskit").exists());
    assert!(!root.join("var/lib/fhskit").exists());
    assert_does_not_run(&program);
    let out = assert_ok(&fhskit(&[os("shim"), os("uninstall"), os("--root"), root.as_os_str()]));
    assert!(out.contains("nothing to uninstall"), "{out}");
}

/// Copies `program` into `root` with the FHS loader path as its interpreter, adds the C library, and runs it in a
/// chroot of `root` (in a user namespace, so this works unprivileged too) with an empty environment.
fn run_in_root_as_container(root: &Path, program: &Path) {
    let inside = root.join("bin/needs-lib");
    put_in_root(root, program, "/bin/needs-lib");
    set_interpreter(&inside, Path::new(HOST_LD));
    put_in_root(root, Path::new("/lib/x86_64-linux-gnu/libc.so.6"), "/usr/lib/x86_64-linux-gnu/libc.so.6");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "/usr/sbin/chroot"])
        .arg(root)
        .arg("/bin/needs-lib")
        .env_clear()
        .output()
        .unwrap();
    if !out.status.success() && text(&out.stderr).contains("unshare failed") {
        test_support::unmet(format!("user namespaces are not permitted here: {}", text(&out.stderr)));
        return;
    }
    assert_eq!(assert_ok(&out), "answer=42\n");
}

#[test]
fn a_real_loader_is_replaced_only_with_force_and_restored_by_uninstall() {
    let dir = scratch("force");
    let root = dir.join("root");
    fs::create_dir_all(root.join("usr/lib64")).unwrap();
    // Merged /usr with an absolute symlink: resolving it naively would write to the host's /usr/lib64.
    symlink("/usr/lib64", root.join("lib64")).unwrap();
    let real = fs::read(fs::canonicalize(HOST_LD).unwrap()).unwrap();
    let inside = root.join("usr/lib64/ld-linux-x86-64.so.2");
    fs::write(&inside, &real).unwrap();
    fs::set_permissions(&inside, fs::Permissions::from_mode(0o755)).unwrap();
    // From outside the root, `root/lib64/…` follows the absolute link to the host's loader, so the program names
    // the loader path as the root's own `lib64` link resolves it (the shim finds its root before the `/usr`).
    let (program, lib_dir) = build(&dir, &inside, false).unwrap();
    assert_does_not_run(&program);

    let base =
        [os("shim"), os("install"), os("--root"), root.as_os_str(), os("--system"), os("x86_64-linux")];
    let libs = put_in_root(&root, &lib_dir, "/opt/lib");
    let with_libs = [&base[..], &[os("--lib-dir"), os(libs)]].concat();
    let refused = fhskit(&with_libs);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr).lines().next().unwrap(),
        format!(
            "error: refusing to replace {}: it is a real loader, not ld-shim (pass --force to replace it; a backup is \
             kept and `fhskit shim uninstall` restores it)",
            inside.display()
        )
    );
    assert_eq!(fs::read(&inside).unwrap(), real, "a refused install changes nothing");
    assert!(!root.join("etc/fhskit").exists(), "a refused install writes nothing");

    // With --force the replaced loader is kept and, without --loader, becomes the configured loader.
    let out = assert_ok(&fhskit(&[&with_libs[..], &[os("--force")]].concat()));
    assert!(out.contains("backed up"), "{out}");
    assert!(ld_shim::elf::is_shim(&fs::read(&inside).unwrap()));
    let backup = root.join("var/lib/fhskit/ld-shim/x86_64-linux/backup/ld-linux-x86-64.so.2");
    assert_eq!(fs::read(&backup).unwrap(), real);
    assert_eq!(assert_ok(&run_empty_env(&program)), "answer=42\n");
    // Run directly by its resolved path, the shim still finds the root's config (the `/usr` is not the root).
    let status = assert_ok(&fhskit(&[os("shim"), os("status"), os("--root"), root.as_os_str()]));
    let config_loader = root.join("var/lib/fhskit/ld-shim/x86_64-linux/ld.so");
    assert!(
        status.contains(&format!("shim reports: loader: {} (from config)", config_loader.display())),
        "{status}"
    );
    assert!(status.contains("-> backup/ld-linux-x86-64.so.2 (ok)"), "{status}");

    assert_ok(&fhskit(&[os("shim"), os("uninstall"), os("--root"), root.as_os_str()]));
    assert_eq!(fs::read(&inside).unwrap(), real, "uninstall restores the original loader");
    assert!(!root.join("var/lib/fhskit").exists());
    assert_does_not_run(&program);
}

#[test]
fn bad_input_gets_one_clear_error() {
    let dir = scratch("bad-input");
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    fs::write(dir.join("not-elf"), "hello").unwrap();
    let program = dir.join("program");
    cc(&[fixture("shim-hello.c").as_os_str(), os("-o"), program.as_os_str()]).unwrap();
    let install = |extra: &[&OsStr]| {
        let base =
            [os("shim"), os("install"), os("--root"), root.as_os_str(), os("--system"), os("x86_64-linux")];
        fhskit(&[&base[..], extra].concat())
    };
    // Paths inside the root: a host file of that name (the host's own loader) does not count.
    let put = |host: &Path, inner: &str| {
        let temp = dir.join(format!("staging{}", inner.replace('/', "-")));
        let _ = fs::remove_dir_all(&temp);
        put_in_root(&temp, host, inner);
        temp
    };
    let not_elf = put(&dir.join("not-elf"), "/not-elf");
    let a_program = put(&program, "/bin/program");
    let cases: Vec<(Output, String)> = vec![
        (
            fhskit(&[
                os("shim"),
                os("install"),
                os("--root"),
                not_elf.as_os_str(),
                os("--system"),
                os("x86_64-linux"),
                os("--loader"),
                os("/not-elf"),
            ]),
            format!(
                "error: cannot use loader {}/not-elf for x86_64-linux: not an ELF file",
                not_elf.display()
            ),
        ),
        (
            fhskit(&[
                os("shim"),
                os("install"),
                os("--root"),
                a_program.as_os_str(),
                os("--system"),
                os("x86_64-linux"),
                os("--loader"),
                os("/bin/program"),
            ]),
            format!(
                "error: cannot use loader {}/bin/program for x86_64-linux: it is a program with an interpreter of \
                 its own, not a dynamic loader",
                a_program.display()
            ),
        ),
        (
            install(&[os("--loader"), os("/nonexistent/ld.so")]),
            format!(
                "error: cannot use loader {}/nonexistent/ld.so: no such file inside the root {}",
                root.display(),
                root.display()
            ),
        ),
        (
            install(&[os("--loader"), os(HOST_LD)]),
            format!("error: cannot use loader {}{HOST_LD}: no such file inside the root", root.display()),
        ),
        (
            install(&[os("--lib-dir"), os("relative/dir")]),
            "error: cannot use library directory relative/dir: the path must be absolute".to_owned(),
        ),
        (
            fhskit(&[os("shim"), os("status"), os("--root"), dir.join("missing").as_os_str()]),
            format!("error: cannot use root {}/missing", dir.display()),
        ),
        (
            fhskit(&[
                os("shim"),
                os("status"),
                os("--root"),
                root.as_os_str(),
                os("--system"),
                os("mips-linux"),
            ]),
            "error: unknown system \"mips-linux\"".to_owned(),
        ),
    ];
    if Path::new(HOST_LD_I686).exists() {
        let i686 = put(Path::new(HOST_LD_I686), HOST_LD_I686);
        let out = fhskit(&[
            os("shim"),
            os("install"),
            os("--root"),
            i686.as_os_str(),
            os("--system"),
            os("x86_64-linux"),
            os("--loader"),
            os(HOST_LD_I686),
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("a 32-bit file, the system is 64-bit"), "{}", text(&out.stderr));
    }
    for (output, expected) in cases {
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        assert!(
            text(&output.stderr).starts_with(&expected),
            "expected {expected:?}, got {}",
            text(&output.stderr)
        );
    }
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "failed installs leave nothing behind");
}

#[test]
fn the_32_bit_shim_installs_at_lib_ld_linux_so_2() {
    if ld_shim::embedded::I686.is_none() {
        test_support::unmet(
            "fhskit was built without the 32-bit shim (no i686-unknown-linux-gnu Rust target)",
        );
        return;
    }
    if !Path::new(HOST_LD_I686).exists() {
        test_support::unmet(format!("no 32-bit loader at {HOST_LD_I686}"));
        return;
    }
    let dir = scratch("i686");
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    let (program, lib_dir) = match build(&dir, &root.join("lib/ld-linux.so.2"), true) {
        Ok(built) => built,
        Err(err) => {
            test_support::unmet(format!("cc -m32 cannot build the fixtures: {err}"));
            return;
        }
    };
    let loader = loader_in_root(&root);
    let i686_loader = put_in_root(&root, Path::new(HOST_LD_I686), "/usr/lib32/ld-linux.so.2");
    let i686_libs = put_in_root(&root, &lib_dir, "/usr/lib32/shimtest");
    let out = assert_ok(&fhskit(&[
        os("shim"),
        os("install"),
        os("--root"),
        root.as_os_str(),
        os("--loader"),
        os(loader),
        os("--i686-loader"),
        os(i686_loader),
        os("--i686-lib-dir"),
        os(i686_libs),
    ]));
    assert!(out.contains("installed the i686-linux shim"), "{out}");
    assert!(out.contains("installed the x86_64-linux shim"), "{out}");
    assert_eq!(assert_ok(&run_empty_env(&program)), "answer=42\n");
    assert_ok(&fhskit(&[os("shim"), os("uninstall"), os("--root"), root.as_os_str()]));
    assert!(!root.join("lib/ld-linux.so.2").exists());
}

#[test]
fn install_at_the_real_loader_path_in_a_mount_namespace() {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let have_unshare = Command::new("unshare").arg("--version").output().is_ok();
    if !is_root || !have_unshare {
        test_support::unmet("needs root and unshare for a private mount namespace");
        return;
    }
    let dir = scratch("mountns");
    let (_, lib_dir) = build(&dir, Path::new(HOST_LD), false).unwrap();
    let real = fs::canonicalize(HOST_LD).unwrap();
    let loader_dir = fs::canonicalize(Path::new(HOST_LD).parent().unwrap()).unwrap();
    let host_entry = fs::symlink_metadata(HOST_LD).unwrap();
    // A private copy of the loader directory (holding only a link to the real loader) is mounted over the real one,
    // and tmpfs over /etc and /var/lib, all checked before anything is written: the host's files are never
    // touched. After the install every program started (fhskit itself too) goes through the shim.
    let copy = dir.join("loader-dir");
    fs::create_dir_all(&copy).unwrap();
    symlink(&real, copy.join("ld-linux-x86-64.so.2")).unwrap();
    let script = format!(
        "set -e
         mount --bind {copy} {loader_dir}
         mount -t tmpfs tmpfs /etc
         mount -t tmpfs tmpfs /var/lib
         for d in {loader_dir} /etc /var/lib; do mountpoint -q $d; done
         {fhskit} shim install --root / --system x86_64-linux --force --lib-dir {lib_dir}
         /bin/echo started through the shim
         {fhskit} shim status
         {fhskit} shim uninstall",
        copy = copy.display(),
        loader_dir = loader_dir.display(),
        fhskit = FHSKIT,
        lib_dir = lib_dir.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    if !out.status.success() && text(&out.stderr).contains("Operation not permitted") {
        test_support::unmet(format!("mount namespaces are not permitted here: {}", text(&out.stderr)));
        return;
    }
    let stdout = assert_ok(&out);
    assert!(stdout.contains(&format!("installed the x86_64-linux shim at {HOST_LD}")), "{stdout}");
    assert!(stdout.contains("started through the shim\n"), "{stdout}");
    assert!(stdout.contains(&format!("interpreter:  {HOST_LD} (ld-shim)")), "{stdout}");
    // The shim run directly by its FHS path finds the config of the real root (not of `/usr`, where a merged-/usr
    // host really keeps it).
    assert!(
        stdout.contains("shim reports: loader: /var/lib/fhskit/ld-shim/x86_64-linux/ld.so (from config)"),
        "{stdout}"
    );
    assert!(stdout.contains("removed the x86_64-linux shim"), "{stdout}");
    assert!(stdout.contains("backed up"), "{stdout}");
    assert_eq!(
        fs::read_link(copy.join("ld-linux-x86-64.so.2")).unwrap(),
        real,
        "uninstall restored the link"
    );
    assert_eq!(fs::symlink_metadata(HOST_LD).unwrap().file_type(), host_entry.file_type());
    assert!(!ld_shim::elf::is_shim(&fs::read(HOST_LD).unwrap()), "the host's loader is untouched");
}

fn md5_hex(path: &Path) -> String {
    use md5::{Digest, Md5};
    Md5::digest(fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A host root whose dpkg database holds two packages, laid out as Debian ships them: `libshimtest1` (the fixture
/// library, which needs `libc.so.6`) and `libc6` (copies of this host's C library and loader, with the absolute
/// `/lib64/ld-linux-x86-64.so.2` link).
fn fake_host(dir: &Path, lib: &Path) -> PathBuf {
    let host = dir.join("host");
    let multiarch = host.join("lib/x86_64-linux-gnu");
    fs::create_dir_all(&multiarch).unwrap();
    fs::create_dir_all(host.join("usr/lib/x86_64-linux-gnu")).unwrap();
    fs::create_dir_all(host.join("lib64")).unwrap();
    fs::create_dir_all(host.join("var/lib/dpkg/info")).unwrap();
    fs::copy(lib, host.join("usr/lib/x86_64-linux-gnu/libshimtest.so")).unwrap();
    let libc = fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    fs::copy(libc, multiarch.join("libc.so.6")).unwrap();
    fs::copy(fs::canonicalize(HOST_LD).unwrap(), multiarch.join("ld-linux-x86-64.so.2")).unwrap();
    symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", host.join("lib64/ld-linux-x86-64.so.2")).unwrap();
    let status = "Package: libshimtest1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n\
                  Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n";
    fs::write(host.join("var/lib/dpkg/status"), status).unwrap();
    let packages: [(&str, &[&str], &[&str]); 2] = [
        (
            "libshimtest1",
            &["/usr", "/usr/lib", "/usr/lib/x86_64-linux-gnu"],
            &["/usr/lib/x86_64-linux-gnu/libshimtest.so"],
        ),
        (
            "libc6",
            &["/lib", "/lib/x86_64-linux-gnu", "/lib64", "/lib64/ld-linux-x86-64.so.2"],
            &["/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"],
        ),
    ];
    for (name, other, files) in packages {
        let list: String = ["/."].iter().chain(other).chain(files).map(|line| format!("{line}\n")).collect();
        fs::write(host.join(format!("var/lib/dpkg/info/{name}:amd64.list")), list).unwrap();
        let sums: String = files
            .iter()
            .map(|file| format!("{}  {}\n", md5_hex(&host.join(&file[1..])), &file[1..]))
            .collect();
        fs::write(host.join(format!("var/lib/dpkg/info/{name}:amd64.md5sums")), sums).unwrap();
    }
    host
}

#[test]
fn install_builds_the_library_set_in_the_store_from_declared_packages() {
    let dir = scratch("packages");
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    let interp = root.join("lib64/ld-linux-x86-64.so.2");
    let (program, lib_dir) = build(&dir, &interp, false).unwrap();
    // The packaged library needs libc.so.6 (as every real one does), so the set must follow it to libc6.
    let packaged = dir.join("libshimtest.so");
    let source = fixture("shim-lib.c");
    let args =
        ["-shared", "-fPIC"].map(os).into_iter().chain([source.as_os_str(), os("-o"), packaged.as_os_str()]);
    cc(&args.chain(["-Wl,--no-as-needed", "-lc"].map(os)).collect::<Vec<_>>()).unwrap();
    let host = fake_host(&dir, &packaged);
    // The library exists only inside the fake host root from here on.
    fs::remove_dir_all(&lib_dir).unwrap();
    let store_dir = dir.join("store");
    let store = store_dir.to_str().unwrap();
    let install = |packages: &[&str]| {
        let mut args = vec![
            os("shim"),
            os("install"),
            os("--root"),
            root.as_os_str(),
            os("--system"),
            os("x86_64-linux"),
            os("--offline"),
            os("--host-root"),
            host.as_os_str(),
            os("--store"),
            os(store),
        ];
        for package in packages {
            args.extend([os("--package"), os(package)]);
        }
        fhskit(&args)
    };

    // A package the host does not have: one error, nothing written under the root.
    let out = install(&["libnothere1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("error: cannot realise packages libnothere1"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    assert_does_not_run(&program);

    let out = assert_ok(&install(&["libshimtest1"]));
    // libc6 came in because libshimtest.so needs libc.so.6; its loader became the configured loader.
    let state = root.join("var/lib/fhskit/ld-shim/x86_64-linux");
    let loader = fs::read_link(state.join("ld.so")).unwrap();
    assert!(loader.starts_with(store_dir.join("store")), "{}", loader.display());
    assert!(loader.to_string_lossy().contains("-libc6-2.36-9/"), "{}", loader.display());
    let set = fs::read_link(state.join("lib")).unwrap();
    assert!(set.to_string_lossy().ends_with("-ld-shim-libraries-x86_64-linux"), "{}", set.display());
    assert!(out.contains(&format!("libraries: 3 in {} -> {}", state.join("lib").display(), set.display())));
    let mut names: Vec<String> =
        fs::read_dir(&set).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["ld-linux-x86-64.so.2", "libc.so.6", "libshimtest.so"]);
    // Every link leads into a package's store path, never to the host's files.
    for name in &names {
        let target = fs::read_link(set.join(name)).unwrap();
        assert!(target.starts_with(store_dir.join("store")), "{name} -> {}", target.display());
    }
    assert_eq!(assert_ok(&run_empty_env(&program)), "answer=42\n");

    let status = assert_ok(&fhskit(&[os("shim"), os("status"), os("--root"), root.as_os_str()]));
    assert!(status.contains(&format!("library set:  {} (in the store", set.display())), "{status}");
    assert!(status.contains("libraries:    3 in"), "{status}");

    // The set is a GC root: a collection keeps it and the packages it refers to.
    let gc = [os("store"), os("--store"), os(store), os("gc")];
    assert_ok(&fhskit(&gc));
    assert_eq!(assert_ok(&run_empty_env(&program)), "answer=42\n");

    // Uninstalling drops the root; the next collection frees the set and the packages.
    assert_ok(&fhskit(&[os("shim"), os("uninstall"), os("--root"), root.as_os_str()]));
    assert_does_not_run(&program);
    let out = assert_ok(&fhskit(&gc));
    assert!(out.contains("3 store paths deleted"), "{out}");
    assert!(!set.exists());
}

#[test]
fn the_aarch64_shim_installs_and_serves_programs_under_qemu() {
    const AARCH64_LIBS: &str = "/usr/aarch64-linux-gnu/lib";
    const AARCH64_LD: &str = "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1";
    if ld_shim::embedded::AARCH64.is_none() {
        test_support::unmet(
            "fhskit was built without the aarch64 shim (no aarch64-unknown-linux-gnu Rust target)",
        );
        return;
    }
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !have("qemu-aarch64") || !have("aarch64-linux-gnu-gcc") || !Path::new(AARCH64_LD).exists() {
        test_support::unmet(format!("needs qemu-aarch64, aarch64-linux-gnu-gcc and {AARCH64_LD}"));
        return;
    }
    let dir = scratch("aarch64");
    let root = dir.join("root");
    let lib_dir = dir.join("lib");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&lib_dir).unwrap();
    let gcc = |args: &[&OsStr]| {
        let out = Command::new("aarch64-linux-gnu-gcc").args(args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let lib_src = fixture("shim-lib.c");
    let lib = lib_dir.join("libshimtest.so");
    gcc(&[os("-shared"), os("-fPIC"), lib_src.as_os_str(), os("-o"), lib.as_os_str()]);
    let program = dir.join("needs-lib");
    let src = fixture("shim-needs-lib.c");
    let link_dir = format!("-L{}", lib_dir.display());
    gcc(&[src.as_os_str(), os("-o"), program.as_os_str(), os(&link_dir), os("-lshimtest")]);
    set_interpreter(&program, &root.join("lib/ld-linux-aarch64.so.1"));
    let qemu = || Command::new("qemu-aarch64").arg(&program).env_clear().output().unwrap();
    assert!(!qemu().status.success(), "runs before the install");

    put_in_root(&root, Path::new(AARCH64_LD), AARCH64_LD);
    put_in_root(&root, &Path::new(AARCH64_LIBS).join("libc.so.6"), &format!("{AARCH64_LIBS}/libc.so.6"));
    let libs = put_in_root(&root, &lib_dir, "/opt/aarch64/lib");
    let out = assert_ok(&fhskit(&[
        os("shim"),
        os("install"),
        os("--root"),
        root.as_os_str(),
        os("--system"),
        os("aarch64-linux"),
        os("--aarch64-loader"),
        os(AARCH64_LD),
        os("--aarch64-lib-dir"),
        os(libs),
        os("--aarch64-lib-dir"),
        os(AARCH64_LIBS),
    ]));
    assert!(out.contains("installed the aarch64-linux shim"), "{out}");
    assert!(ld_shim::elf::is_shim(&fs::read(root.join("lib/ld-linux-aarch64.so.1")).unwrap()));
    // An empty environment: the loader and both library directories come from the config.
    assert_eq!(assert_ok(&qemu()), "answer=42\n");
    let status = assert_ok(&fhskit(&[os("shim"), os("status"), os("--root"), root.as_os_str()]));
    assert!(status.contains("aarch64-linux:\n"), "{status}");
    assert!(status.contains(&format!("-> ../../../../..{AARCH64_LD} (ok)")), "{status}");

    let out = assert_ok(&fhskit(&[os("shim"), os("uninstall"), os("--root"), root.as_os_str()]));
    assert!(out.contains("removed the aarch64-linux shim"), "{out}");
    assert!(!qemu().status.success(), "runs after the uninstall");
}

/// Builds `shim-maps.c` (`-DWITH_ZLIB` and libz.so.1 for 64-bit) with `interpreter`.
fn build_maps(dir: &Path, name: &str, interpreter: &Path, m32: bool) -> Result<PathBuf, String> {
    let program = dir.join(name);
    let src = fixture("shim-maps.c");
    let mut args: Vec<&OsStr> = vec![src.as_os_str(), os("-o"), program.as_os_str()];
    if m32 {
        args.push(os("-m32"));
    } else {
        args.extend(["-DWITH_ZLIB", "-Wl,--no-as-needed", "-l:libz.so.1"].map(os));
    }
    cc(&args)?;
    set_interpreter(&program, interpreter);
    Ok(program)
}

/// The objects `shim-maps` reports as mapped, by file name (the path each was loaded from).
fn mapped(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| line.strip_prefix("mapped "))
        .map(|path| (Path::new(path).file_name().unwrap().to_string_lossy().into_owned(), path.to_owned()))
        .collect()
}

/// Each of `names` (a soname, or the start of the versioned file it links to) is mapped from a file in the store
/// (the shim itself, named like the loader, is mapped from the root; the real loader it started must come from the
/// store).
#[track_caller]
fn assert_from_store(objects: &[(String, String)], names: &[&str], store_dir: &Path, out: &str) {
    for name in names {
        assert!(
            objects
                .iter()
                .any(|(n, path)| n.starts_with(name) && Path::new(path).starts_with(store_dir.join("store"))),
            "{name} is not mapped from the store: {out}"
        );
    }
}

/// `--steam-libraries`: the steam-run set (64- and 32-bit) realised from the host's dpkg database into the store as
/// the shim's default libraries; programs with nothing in their environment get the loader, the C library and
/// libz from the set's store paths.
#[test]
fn install_with_the_steam_libraries_serves_64_and_32_bit_programs_from_the_store() {
    let dir = scratch("steam-libraries");
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    let program = build_maps(&dir, "maps64", &root.join("lib64/ld-linux-x86-64.so.2"), false).unwrap();
    assert_does_not_run(&program);
    let store_dir = dir.join("store");
    let out = fhskit(&[
        os("shim"),
        os("install"),
        os("--root"),
        root.as_os_str(),
        os("--steam-libraries"),
        os("--offline"),
        os("--store"),
        store_dir.as_os_str(),
    ]);
    let stdout = assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("fhskit: the steam-run library set: "), "{stderr}");
    assert!(stdout.contains("installed the x86_64-linux shim"), "{stdout}");
    let state = root.join("var/lib/fhskit/ld-shim/x86_64-linux");
    let set = fs::read_link(state.join("lib")).unwrap();
    assert!(set.to_string_lossy().ends_with("-ld-shim-libraries-x86_64-linux"), "{}", set.display());
    // The C/C++ runtime is always in the set, and libz (one of the optional libraries) where the host has it.
    for (name, package) in
        [("libc.so.6", "-libc6-"), ("libstdc++.so.6", "-libstdc++6-"), ("libz.so.1", "-zlib1g-")]
    {
        let target = fs::canonicalize(set.join(name)).unwrap();
        assert!(target.starts_with(store_dir.join("store")), "{name} -> {}", target.display());
        assert!(target.to_string_lossy().contains(package), "{name} -> {}", target.display());
    }
    let loader = fs::read_link(state.join("ld.so")).unwrap();
    assert!(loader.to_string_lossy().contains("-libc6-"), "{}", loader.display());

    let out = assert_ok(&run_empty_env(&program));
    assert!(out.starts_with("zlib "), "{out}");
    let objects = mapped(&out);
    assert_from_store(&objects, &["libz.so.1", "libc.so.6", "ld-linux-x86-64.so.2"], &store_dir, &out);

    // The 32-bit half: the i686 shim at /lib/ld-linux.so.2 with the set's 32-bit C library.
    if ld_shim::embedded::I686.is_none() {
        test_support::unmet(
            "fhskit was built without the 32-bit shim (no i686-unknown-linux-gnu Rust target)",
        );
        return;
    }
    let program32 = match build_maps(&dir, "maps32", &root.join("lib/ld-linux.so.2"), true) {
        Ok(program) => program,
        Err(err) => {
            test_support::unmet(format!("cc -m32 cannot build the fixtures: {err}"));
            return;
        }
    };
    assert!(stdout.contains("installed the i686-linux shim"), "{stdout}");
    let set32 = fs::read_link(root.join("var/lib/fhskit/ld-shim/i686-linux/lib")).unwrap();
    assert!(set32.to_string_lossy().ends_with("-ld-shim-libraries-i686-linux"), "{}", set32.display());
    let out = assert_ok(&run_empty_env(&program32));
    let objects = mapped(&out);
    assert_from_store(&objects, &["libc.so.6", "ld-linux.so.2"], &store_dir, &out);

    // The set and its packages live until uninstall.
    assert_ok(&fhskit(&[os("shim"), os("uninstall"), os("--root"), root.as_os_str()]));
    assert_does_not_run(&program);
    assert!(!root.join("var/lib/fhskit").exists());
}
