//! DT_NEEDED editing: print, add, remove, replace (with `.gnu.version_r`), checked by running and by the loader's
//! own view (`LD_TRACE_LOADED_OBJECTS`).

use crate::common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn print_needed(p: &Path) -> String {
    patchelf_ok(["--print-needed".as_ref(), p.as_os_str()])
}

/// What the dynamic loader actually maps for `prog` (ldd's mode of ld.so), one soname per line.
fn loaded_objects(prog: &Path) -> String {
    let out = Command::new(prog)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("trace loaded objects");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dir_of(fixture_name: &str) -> PathBuf {
    fixture(fixture_name).parent().unwrap().to_owned()
}

#[test]
fn print_needed_in_dynamic_order() {
    assert_eq!(print_needed(&fixture("hello")), "libc.so.6\n");
    assert_eq!(print_needed(&fixture("usefoo")), "libelffoo.so.1\nlibc.so.6\n");
    // libelffoo calls nothing from libc, so the linker (--as-needed) records no dependency.
    assert_eq!(print_needed(&fixture("libfoo")), "");
}

#[test]
fn add_needed_loads_the_library() {
    let dir = TestDir::new("needed_add");
    for name in ["hello", "hello-nopie", "hello-relro"] {
        let prog = dir.copy_fixture(name, name);
        patchelf_ok([
            "--add-needed".as_ref(),
            "libelfgreet.so".as_ref(),
            "--set-rpath".as_ref(),
            dir_of("libgreet").as_os_str(),
            prog.as_os_str(),
        ]);
        assert_eq!(print_needed(&prog), "libelfgreet.so\nlibc.so.6\n", "{name}: new entries go first");
        check_layout(&prog);
        assert_runs(&prog, "elf-hello: ok 1\n");
        assert!(
            loaded_objects(&prog).contains("libelfgreet.so"),
            "{name}: the loader maps the added library"
        );
        assert_golden(&format!("needed_add_{}", name.replace('-', "_")), &dump(&prog));
    }
}

#[test]
fn add_needed_several_and_duplicates() {
    let dir = TestDir::new("needed_add_several");
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok([
        "--add-needed".as_ref(),
        "libm.so.6".as_ref(),
        "--add-needed".as_ref(),
        "libelfgreet.so".as_ref(),
        "--add-needed".as_ref(),
        "libm.so.6".as_ref(),
        "--add-rpath".as_ref(),
        dir_of("libgreet").as_os_str(),
        prog.as_os_str(),
    ]);
    // patchelf keeps added names in a sorted set: duplicates collapse, order is lexicographic.
    assert_eq!(print_needed(&prog), "libelfgreet.so\nlibm.so.6\nlibelffoo.so.1\nlibc.so.6\n");
    assert_runs(&prog, "elf-usefoo: foo 42\n");
    let loaded = loaded_objects(&prog);
    assert!(loaded.contains("libm.so.6") && loaded.contains("libelfgreet.so"), "{loaded}");
}

#[test]
fn add_needed_to_a_shared_library() {
    let dir = TestDir::new("needed_add_library");
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let lib = dir.copy_fixture("libfoo", "lib/libelffoo.so.1");
    fs::copy(fixture("libgreet"), libdir.join("libelfgreet.so")).unwrap();
    patchelf_ok([
        "--add-needed".as_ref(),
        "libelfgreet.so".as_ref(),
        "--set-rpath".as_ref(),
        "$ORIGIN".as_ref(),
        lib.as_os_str(),
    ]);
    assert_eq!(print_needed(&lib), "libelfgreet.so\n");
    check_layout(&lib);
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
    assert!(loaded_objects(&prog).contains("libelfgreet.so"));
    assert_golden("needed_add_library", &dump(&lib));
}

#[test]
fn remove_needed_compacts_in_place() {
    let dir = TestDir::new("needed_remove");
    let prog = dir.copy_fixture("hello", "prog");
    patchelf_ok(["--add-needed".as_ref(), "libm.so.6".as_ref(), prog.as_os_str()]);
    assert_eq!(print_needed(&prog), "libm.so.6\nlibc.so.6\n");
    let size = fs::metadata(&prog).unwrap().len();
    patchelf_ok(["--remove-needed".as_ref(), "libm.so.6".as_ref(), prog.as_os_str()]);
    assert_eq!(print_needed(&prog), "libc.so.6\n");
    assert_eq!(fs::metadata(&prog).unwrap().len(), size, "removal does not grow the file");
    assert_runs(&prog, "elf-hello: ok 1\n");
    assert!(!loaded_objects(&prog).contains("libm.so.6"));
    // Removing a name that is not there is not an error and changes nothing.
    let before = fs::read(&prog).unwrap();
    patchelf_ok(["--remove-needed".as_ref(), "libnothere.so".as_ref(), prog.as_os_str()]);
    assert_unchanged(&prog, &before);
}

#[test]
fn remove_needed_of_a_used_library_breaks_the_program() {
    let dir = TestDir::new("needed_remove_used");
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok(["--remove-needed".as_ref(), "libelffoo.so.1".as_ref(), prog.as_os_str()]);
    assert_eq!(print_needed(&prog), "libc.so.6\n");
    let run = run_program(&prog, &[]);
    assert!(!run.ok(), "{run:#?}");
    assert_golden("needed_remove_used", &dump(&prog));
}

/// The program binds versioned symbols (ELFFOO_1.0) of libelffoo.so.1. Renaming the dependency to a library with
/// another soname only works if `.gnu.version_r` names the new file too; otherwise ld.so aborts in
/// `_dl_check_map_versions`.
#[test]
fn replace_needed_updates_version_needs_and_runs() {
    let dir = TestDir::new("needed_replace");
    for name in ["usefoo", "usefoo-nopie", "usefoo-rpath"] {
        let prog = dir.copy_fixture(name, name);
        assert_eq!(verneed_files(&prog), vec!["libelffoo.so.1", "libc.so.6"]);
        patchelf_ok([
            "--replace-needed".as_ref(),
            "libelffoo.so.1".as_ref(),
            "libelfalt.so.1".as_ref(),
            "--set-rpath".as_ref(),
            dir_of("libfoo-alt").as_os_str(),
            prog.as_os_str(),
        ]);
        assert_eq!(print_needed(&prog), "libelfalt.so.1\nlibc.so.6\n");
        assert_eq!(verneed_files(&prog), vec!["libelfalt.so.1", "libc.so.6"], "{name}");
        check_layout(&prog);
        assert_runs(&prog, "elf-usefoo: foo 42\n");
        assert_golden(&format!("needed_replace_{}", name.replace('-', "_")), &dump(&prog));
    }
}

#[test]
fn replace_needed_several_at_once_with_add_needed() {
    // patchelf 0.14.3 corrupts names with several replacements plus an add (#359).
    let dir = TestDir::new("needed_replace_several");
    let prog = dir.copy_fixture("usefoo", "prog");
    let libc_path = "/lib/x86_64-linux-gnu/libc.so.6";
    patchelf_ok([
        "--replace-needed".as_ref(),
        "libelffoo.so.1".as_ref(),
        "libelfalt.so.1".as_ref(),
        "--replace-needed".as_ref(),
        "libc.so.6".as_ref(),
        libc_path.as_ref(),
        "--add-needed".as_ref(),
        "libm.so.6".as_ref(),
        "--set-rpath".as_ref(),
        dir_of("libfoo-alt").as_os_str(),
        prog.as_os_str(),
    ]);
    assert_eq!(print_needed(&prog), format!("libm.so.6\nlibelfalt.so.1\n{libc_path}\n"));
    assert_eq!(verneed_files(&prog), vec!["libelfalt.so.1".to_owned(), libc_path.to_owned()]);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}

#[test]
fn replace_needed_of_an_absent_name_changes_nothing() {
    let dir = TestDir::new("needed_replace_absent");
    let prog = dir.copy_fixture("usefoo", "prog");
    let before = fs::read(&prog).unwrap();
    patchelf_ok([
        "--replace-needed".as_ref(),
        "libnothere.so".as_ref(),
        "libother.so".as_ref(),
        prog.as_os_str(),
    ]);
    assert_unchanged(&prog, &before);
}
