//! Foreign machines: aarch64 (64-bit little-endian, 64 KiB default page size) and s390x (64-bit big-endian) built
//! with Debian's cross compilers, plus a 31-bit s390 library (32-bit big-endian). Every print option is checked,
//! edits are checked with `readelf`, and the patched programs run under `qemu-<arch>` with the cross C library as
//! the sysroot. A missing cross compiler or emulator skips with a printed reason (`.ci/run` installs them).

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Arch {
    name: &'static str,
    hello: &'static str,
    prog: &'static str,
    lib: &'static str,
    qemu: &'static str,
    sysroot: &'static str,
    interp: &'static str,
    machine: &'static str,
    data: &'static str,
}

const AARCH64: Arch = Arch {
    name: "aarch64",
    hello: "hello-aarch64",
    prog: "usefoo-aarch64",
    lib: "libfoo-aarch64",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    interp: "/lib/ld-linux-aarch64.so.1",
    machine: "AArch64",
    data: "little endian",
};

const S390X: Arch = Arch {
    name: "s390x",
    hello: "hello-s390x",
    prog: "usefoo-s390x",
    lib: "libfoo-s390x",
    qemu: "qemu-s390x",
    sysroot: "/usr/s390x-linux-gnu",
    interp: "/lib/ld64.so.1",
    machine: "IBM S/390",
    data: "big endian",
};

/// The fixtures of `arch`, or None (after printing why) when its cross compiler is missing.
fn built(arch: &Arch) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let prog = optional_fixture(arch.prog)?;
    Some((optional_fixture(arch.hello)?, prog, fixture(arch.lib)))
}

/// Runs `prog` under the emulator with the cross sysroot; None (after printing why) when the emulator is missing.
fn emulate(arch: &Arch, prog: &Path) -> Option<Run> {
    if Command::new(arch.qemu).arg("--version").output().is_err() {
        test_support::unmet(format!("running {}: {} is not installed", prog.display(), arch.qemu));
        return None;
    }
    let out = Command::new(arch.qemu)
        .arg("-L")
        .arg(arch.sysroot)
        .arg(prog)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run the emulator");
    use std::os::unix::process::ExitStatusExt;
    Some(Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[track_caller]
fn assert_emulated(arch: &Arch, prog: &Path, expected: &str) {
    if let Some(run) = emulate(arch, prog) {
        assert!(run.ok() && run.stdout == expected, "{} under {}: {run:#?}", prog.display(), arch.qemu);
    }
}

fn print(opt: &str, p: &Path) -> String {
    patchelf_ok([opt.as_ref(), p.as_os_str()])
}

fn prints(arch: &Arch) {
    let Some((hello, prog, lib)) = built(arch) else { return };
    let header = readelf(&["-h"], &prog);
    assert!(header.contains(arch.machine) && header.contains(arch.data), "{header}");
    assert_eq!(print("--print-interpreter", &hello), format!("{}\n", arch.interp));
    assert_eq!(print("--print-interpreter", &prog), format!("{}\n", arch.interp));
    assert_eq!(print("--print-needed", &prog), "libelffoo.so.1\nlibc.so.6\n");
    assert_eq!(print("--print-rpath", &prog), format!("{}\n", lib.parent().unwrap().display()));
    assert_eq!(print("--print-rpath", &hello), "\n");
    assert_eq!(print("--print-soname", &lib), "libelffoo.so.1\n");
    assert_eq!(print("--print-os-abi", &prog), "System V\n");
    assert_eq!(print("--print-execstack", &prog), "execstack: -\n");
    assert_emulated(arch, &hello, "elf-hello: ok 1\n");
    assert_emulated(arch, &prog, "elf-usefoo: foo 42\n");
}

fn edit_and_run(arch: &Arch) {
    let Some((_, prog_src, lib_src)) = built(arch) else { return };
    let dir = TestDir::new(&format!("foreign_edit_{}", arch.name));
    let prog = dir.copy_file(&prog_src, "prog");
    // The library moves to a directory only the new rpath names; the loader moves to a much longer path.
    let libdir = dir.join("moved/libraries/of/the/foreign/program");
    fs::create_dir_all(&libdir).unwrap();
    fs::copy(&lib_src, libdir.join("libelffoo.so.1")).unwrap();
    let loaderdir = dir.join("a/much/longer/interpreter/path/than/before");
    fs::create_dir_all(&loaderdir).unwrap();
    let loader_name = Path::new(arch.interp).file_name().unwrap();
    let loader = loaderdir.join(loader_name);
    fs::copy(Path::new(arch.sysroot).join("lib").join(loader_name), &loader).unwrap();
    patchelf_ok([
        "--set-interpreter".as_ref(),
        loader.as_os_str(),
        "--set-rpath".as_ref(),
        libdir.as_os_str(),
        "--add-needed".as_ref(),
        "libm.so.6".as_ref(),
        prog.as_os_str(),
    ]);
    assert_eq!(interpreter(&prog).as_deref(), Some(&*loader.to_string_lossy()));
    assert_eq!(dyn_values(&prog, "RUNPATH"), vec![libdir.display().to_string()]);
    assert_eq!(dyn_values(&prog, "NEEDED"), vec!["libm.so.6", "libelffoo.so.1", "libc.so.6"]);
    assert_eq!(print("--print-interpreter", &prog), format!("{}\n", loader.display()));
    check_layout(&prog);
    assert_emulated(arch, &prog, "elf-usefoo: foo 42\n");
    assert_golden(&format!("foreign_edit_{}", arch.name), &dump(&prog));

    // Replace the dependency (the version needs follow) and point at a renamed copy.
    fs::copy(&lib_src, libdir.join("libelffoo-renamed.so.1")).unwrap();
    fs::remove_file(libdir.join("libelffoo.so.1")).unwrap();
    patchelf_ok([
        "--replace-needed".as_ref(),
        "libelffoo.so.1".as_ref(),
        "libelffoo-renamed.so.1".as_ref(),
        prog.as_os_str(),
    ]);
    assert_eq!(verneed_files(&prog)[0], "libelffoo-renamed.so.1");
    assert_emulated(arch, &prog, "elf-usefoo: foo 42\n");
}

fn flags_and_library(arch: &Arch) {
    let Some((hello_src, prog_src, lib_src)) = built(arch) else { return };
    let dir = TestDir::new(&format!("foreign_flags_{}", arch.name));
    // DF_1_NODEFLIB must be written in the file's byte order; with it the loader only finds libc via the rpath.
    let hello = dir.copy_file(&hello_src, "hello");
    patchelf_ok(["--no-default-lib".as_ref(), "--set-rpath".as_ref(), "/lib".as_ref(), hello.as_os_str()]);
    // The PIE flag stays; no stray bits (a byte-order mistake shows up as unknown or wrong flags).
    let flags = dyn_values(&hello, "FLAGS_1");
    assert!(flags.len() == 1, "{flags:?}");
    let mut names: Vec<&str> = flags[0].trim().trim_start_matches("Flags:").split_whitespace().collect();
    names.sort();
    assert_eq!(names, vec!["NODEFLIB", "PIE"], "{flags:?}");
    check_layout(&hello);
    assert_emulated(arch, &hello, "elf-hello: ok 1\n");
    patchelf_ok(["--set-execstack".as_ref(), "--set-os-abi".as_ref(), "linux".as_ref(), hello.as_os_str()]);
    assert_eq!(print("--print-execstack", &hello), "execstack: X\n");
    assert_eq!(print("--print-os-abi", &hello), "Linux\n");
    assert_eq!(fs::read(&hello).unwrap()[7], 3);
    let stack = segments(&hello).into_iter().find(|s| s.kind == "GNU_STACK").unwrap();
    assert_eq!(stack.flags, "RWE");

    // Library edits: soname and DT_DEBUG; the program linked against it still runs.
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let lib = dir.copy_file(&lib_src, "lib/libelffoo.so.1");
    patchelf_ok([
        "--set-soname".as_ref(),
        "libelffoo-with-a-longer-soname.so.1".as_ref(),
        "--add-debug-tag".as_ref(),
        lib.as_os_str(),
    ]);
    assert_eq!(dyn_values(&lib, "SONAME"), vec!["libelffoo-with-a-longer-soname.so.1"]);
    assert_eq!(dyn_values(&lib, "DEBUG").len(), 1);
    check_layout(&lib);
    let prog = dir.copy_file(&prog_src, "prog");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_emulated(arch, &prog, "elf-usefoo: foo 42\n");
}

#[test]
fn aarch64_prints() {
    prints(&AARCH64);
}

#[test]
fn aarch64_edit_and_run() {
    edit_and_run(&AARCH64);
}

#[test]
fn aarch64_flags_and_library() {
    flags_and_library(&AARCH64);
}

#[test]
fn s390x_big_endian_prints() {
    prints(&S390X);
}

#[test]
fn s390x_big_endian_edit_and_run() {
    edit_and_run(&S390X);
}

#[test]
fn s390x_big_endian_flags_and_library() {
    flags_and_library(&S390X);
}

#[test]
fn s390_32bit_big_endian_library() {
    let Some(src) = optional_fixture("libfoo-s390") else { return };
    let header = readelf(&["-h"], &src);
    assert!(header.contains("ELF32") && header.contains("big endian"), "{header}");
    let dir = TestDir::new("foreign_s390_32");
    let lib = dir.copy_file(&src, "libelffoo.so.1");
    assert_eq!(print("--print-soname", &lib), "libelffoo.so.1\n");
    assert_eq!(print("--print-needed", &lib), "");
    assert_eq!(print("--print-rpath", &lib), "\n");
    patchelf_ok([
        "--set-soname".as_ref(),
        "libelffoo-renamed-for-s390.so.1".as_ref(),
        "--set-rpath".as_ref(),
        "/a/long/run/path/for/the/big/endian/library".as_ref(),
        "--add-needed".as_ref(),
        "libc.so.6".as_ref(),
        "--no-default-lib".as_ref(),
        lib.as_os_str(),
    ]);
    assert_eq!(dyn_values(&lib, "SONAME"), vec!["libelffoo-renamed-for-s390.so.1"]);
    assert_eq!(dyn_values(&lib, "RUNPATH"), vec!["/a/long/run/path/for/the/big/endian/library"]);
    assert_eq!(dyn_values(&lib, "NEEDED"), vec!["libc.so.6"]);
    assert_eq!(
        dyn_values(&lib, "FLAGS_1").iter().map(|s| s.trim().to_owned()).collect::<Vec<_>>(),
        vec!["Flags: NODEFLIB"]
    );
    assert_eq!(print("--print-soname", &lib), "libelffoo-renamed-for-s390.so.1\n");
    check_layout(&lib);
    // The symbols are still there and resolvable by name.
    let syms = readelf(&["--dyn-syms"], &lib);
    assert!(syms.contains("elf_foo_value@@ELFFOO_1.0"), "{syms}");
    assert_golden("foreign_s390_32", &dump(&lib));
}
