//! `--set-interpreter` and `--print-interpreter`: the result must run with the loader moved to a longer path.

use crate::common::*;
use std::fs;
use std::path::{Path, PathBuf};

const LD64: &str = "/lib64/ld-linux-x86-64.so.2";
const LD32: &str = "/lib/ld-linux.so.2";

/// Copies the system loader into a deep directory of `dir` so that the new interpreter path is much longer than the
/// old one and the program can only start if the new `PT_INTERP` is really used.
fn moved_loader(dir: &TestDir, loader: &str) -> PathBuf {
    let deep = dir.join("a/much/longer/interpreter/path/than/the/original/one/lib64");
    fs::create_dir_all(&deep).unwrap();
    let file = Path::new(loader).file_name().unwrap();
    dir.copy_file(
        Path::new(loader),
        &format!("{}/{}", deep.strip_prefix(dir.path()).unwrap().display(), file.to_string_lossy()),
    )
}

#[test]
fn print_interpreter_of_every_executable_fixture() {
    for name in
        ["hello", "hello-pie", "hello-nopie", "hello-relro", "init", "manysyms", "usefoo", "usefoo-nopie"]
    {
        assert_eq!(
            patchelf_ok(["--print-interpreter".as_ref(), fixture(name).as_os_str()]),
            format!("{LD64}\n"),
            "{name}"
        );
    }
    if let Some(p) = optional_fixture("hello32") {
        assert_eq!(patchelf_ok(["--print-interpreter".as_ref(), p.as_os_str()]), format!("{LD32}\n"));
    }
}

#[test]
fn print_interpreter_of_a_library_without_one_fails() {
    let run = patchelf(["--print-interpreter".as_ref(), fixture("libfoo").as_os_str()]).failure(1);
    let msg = error_message(&run);
    assert!(msg.contains(".interp") || msg.contains("interpreter"), "{msg}");
}

fn set_longer(name: &str, golden: &str) {
    let dir = TestDir::new(golden);
    let prog = dir.copy_fixture(name, "prog");
    let loader = moved_loader(&dir, LD64);
    patchelf_ok(["--set-interpreter".as_ref(), loader.as_os_str(), prog.as_os_str()]);
    assert_eq!(
        patchelf_ok(["--print-interpreter".as_ref(), prog.as_os_str()]),
        format!("{}\n", loader.display())
    );
    assert_eq!(interpreter(&prog).as_deref(), Some(&*loader.to_string_lossy()));
    check_layout(&prog);
    assert_runs(&prog, expected_output(name).unwrap());
    assert_golden(golden, &dump(&prog));
    // Without the moved loader the program cannot start: proves the new interpreter path is the one in use.
    fs::remove_file(&loader).unwrap();
    let status = std::process::Command::new(&prog).output();
    assert!(status.is_err() || !status.unwrap().status.success(), "runs without its interpreter?");
}

#[test]
fn set_interpreter_longer_pie() {
    set_longer("hello-pie", "interp_longer_pie");
}

#[test]
fn set_interpreter_longer_nopie() {
    set_longer("hello-nopie", "interp_longer_nopie");
}

#[test]
fn set_interpreter_longer_relro_now() {
    set_longer("hello-relro", "interp_longer_relro");
}

#[test]
fn set_interpreter_longer_nopie_relro_now() {
    set_longer("hello-nopie-relro", "interp_longer_nopie_relro");
}

#[test]
fn set_interpreter_longer_many_symbols() {
    set_longer("manysyms", "interp_longer_manysyms");
}

#[test]
fn set_interpreter_keeps_dt_init() {
    set_longer("init", "interp_longer_init");
}

#[test]
fn set_interpreter_longer_32bit() {
    let Some(src) = optional_fixture("hello32") else { return };
    let dir = TestDir::new("interp_longer_32");
    let prog = dir.copy_file(&src, "prog");
    let loader = moved_loader(&dir, LD32);
    patchelf_ok(["--set-interpreter".as_ref(), loader.as_os_str(), prog.as_os_str()]);
    assert_eq!(interpreter(&prog).as_deref(), Some(&*loader.to_string_lossy()));
    check_layout(&prog);
    assert_runs(&prog, "elf-hello: ok 1\n");
    assert_golden("interp_longer_32", &dump(&prog));
}

#[test]
fn set_interpreter_shorter_runs() {
    let dir = TestDir::new("interp_shorter");
    let prog = dir.copy_fixture("hello", "prog");
    std::os::unix::fs::symlink(LD64, dir.join("ld")).unwrap();
    let short = dir.join("ld");
    patchelf_ok(["--set-interpreter".as_ref(), short.as_os_str(), prog.as_os_str()]);
    assert_eq!(interpreter(&prog).as_deref(), Some(&*short.to_string_lossy()));
    assert_runs(&prog, "elf-hello: ok 1\n");
}

#[test]
fn set_interpreter_to_the_current_value_is_byte_identical() {
    let dir = TestDir::new("interp_same");
    for name in ["hello", "hello-nopie"] {
        let prog = dir.copy_fixture(name, name);
        let before = fs::read(&prog).unwrap();
        patchelf_ok(["--set-interpreter".as_ref(), LD64.as_ref(), prog.as_os_str()]);
        assert_unchanged(&prog, &before);
    }
}

#[test]
fn set_interpreter_empty_is_ignored() {
    let dir = TestDir::new("interp_empty");
    let prog = dir.copy_fixture("hello", "prog");
    let before = fs::read(&prog).unwrap();
    let run = patchelf(["--set-interpreter".as_ref(), "".as_ref(), prog.as_os_str()]).success();
    assert!(run.stdout.is_empty() && run.stderr.is_empty(), "{run:#?}");
    assert_unchanged(&prog, &before);
    assert_runs(&prog, "elf-hello: ok 1\n");
}

#[test]
fn interpreter_alias_option() {
    let dir = TestDir::new("interp_alias");
    let prog = dir.copy_fixture("hello", "prog");
    let loader = moved_loader(&dir, LD64);
    patchelf_ok(["--interpreter".as_ref(), loader.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-hello: ok 1\n");
}
