//! End-to-end tests of `fhskit patchelf …`: the patchelf command line of the `patchelf-rs` crate behind the
//! `fhskit` binary (version, usage, prints, an edit of a compiled program that still runs, errors and exit codes).
//! The options themselves are tested in depth by `patchelf-rs/tests/`.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FHSKIT: &str = env!("CARGO_BIN_EXE_fhskit");

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("patchelf-cli").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn fhskit_patchelf<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(FHSKIT).arg("patchelf").args(args).output().expect("run fhskit")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small dynamically linked C program built from the shared fixtures.
fn hello(dir: &Path) -> PathBuf {
    let out = dir.join("hello");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/elf-hello.c");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {}", src.display());
    out
}

#[test]
fn version_and_usage() {
    let out = fhskit_patchelf(&["--version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("patchelf 0.19"), "{out:?}");
    let out = fhskit_patchelf(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).starts_with("syntax: fhskit patchelf\n"), "{out:?}");
    assert!(text(&out.stderr).contains("[--set-rpath RPATH]"), "{out:?}");
    let out = fhskit_patchelf::<&str>(&[]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn edits_a_program_that_still_runs() {
    let dir = scratch("edit");
    let prog = hello(&dir);
    let out = fhskit_patchelf(&[
        OsStr::new("--set-rpath"),
        OsStr::new("/opt/fhskit/lib"),
        OsStr::new("--add-needed"),
        OsStr::new("libm.so.6"),
        prog.as_os_str(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = fhskit_patchelf(&[OsStr::new("--print-rpath"), OsStr::new("--print-needed"), prog.as_os_str()]);
    assert_eq!(text(&out.stdout), "/opt/fhskit/lib\nlibm.so.6\nlibc.so.6\n");
    let run = Command::new(&prog).output().unwrap();
    assert_eq!(text(&run.stdout), "elf-hello: ok 1\n");
}

#[test]
fn errors_are_one_line_with_exit_1() {
    let dir = scratch("errors");
    let missing = dir.join("missing");
    let out = fhskit_patchelf(&[OsStr::new("--print-rpath"), missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("fhskit patchelf: getting info about '{}': No such file or directory\n", missing.display())
    );
    let not_elf = dir.join("text");
    let script = "#!/bin/sh\necho 'a script long enough to be looked at for the ELF magic'\n";
    fs::write(&not_elf, script).unwrap();
    let out = fhskit_patchelf(&[OsStr::new("--set-rpath"), OsStr::new("/x"), not_elf.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), format!("fhskit patchelf: {}: not an ELF executable\n", not_elf.display()));
    assert_eq!(fs::read(&not_elf).unwrap(), script.as_bytes());
}
