//! The rpath family: print, set, add, remove, shrink (with allowed prefixes) and the RPATH/RUNPATH rules.

use crate::common::*;
use std::fs;
use std::path::PathBuf;

fn libfoo_dir() -> PathBuf {
    fixture("libfoo").parent().unwrap().to_owned()
}

/// A copy of libelffoo in a directory of the test only, so that a program runs only when its new rpath names it.
fn relocated_lib(dir: &TestDir) -> PathBuf {
    let libdir = dir.join("moved-libs");
    fs::create_dir_all(&libdir).unwrap();
    fs::copy(fixture("libfoo"), libdir.join("libelffoo.so.1")).unwrap();
    libdir
}

fn print_rpath(p: &std::path::Path) -> String {
    patchelf_ok(["--print-rpath".as_ref(), p.as_os_str()])
}

#[test]
fn print_rpath_runpath_rpath_and_none() {
    let lib = libfoo_dir().display().to_string();
    assert_eq!(print_rpath(&fixture("usefoo")), format!("{lib}\n"));
    assert_eq!(print_rpath(&fixture("usefoo-rpath")), format!("{lib}\n"));
    assert_eq!(print_rpath(&fixture("hello")), "\n");
    assert_eq!(print_rpath(&fixture("libfoo")), "\n");
    assert_eq!(dyn_values(&fixture("usefoo"), "RUNPATH"), vec![lib.clone()]);
    assert_eq!(dyn_values(&fixture("usefoo-rpath"), "RPATH"), vec![lib]);
}

fn set_rpath_moves_library(name: &str, golden: &str) {
    let dir = TestDir::new(golden);
    let prog = dir.copy_fixture(name, "prog");
    let libdir = relocated_lib(&dir);
    // The library's original directory is still in the old rpath; point the program at the copy only.
    let new = format!("/nonexistent/first/entry/that/makes/the/rpath/longer:{}", libdir.display());
    patchelf_ok(["--set-rpath".as_ref(), new.as_ref(), prog.as_os_str()]);
    assert_eq!(print_rpath(&prog), format!("{new}\n"));
    check_layout(&prog);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
    assert_golden(golden, &dump(&prog));
    fs::remove_dir_all(&libdir).unwrap();
    let run = run_program(&prog, &[]);
    assert!(!run.ok() && run.stderr.contains("libelffoo.so.1"), "must need the moved library: {run:#?}");
}

#[test]
fn set_rpath_longer_pie_runpath() {
    set_rpath_moves_library("usefoo", "rpath_set_pie");
}

#[test]
fn set_rpath_longer_nopie() {
    set_rpath_moves_library("usefoo-nopie", "rpath_set_nopie");
}

#[test]
fn set_rpath_converts_rpath_to_runpath() {
    set_rpath_moves_library("usefoo-rpath", "rpath_set_converts_to_runpath");
    let dir = TestDir::new("rpath_convert_check");
    let prog = dir.copy_fixture("usefoo-rpath", "prog");
    patchelf_ok(["--set-rpath".as_ref(), "/x".as_ref(), prog.as_os_str()]);
    assert_eq!(dyn_values(&prog, "RUNPATH"), vec!["/x"]);
    assert!(dyn_values(&prog, "RPATH").is_empty());
}

#[test]
fn force_rpath_keeps_and_creates_dt_rpath() {
    let dir = TestDir::new("rpath_force");
    let libdir = relocated_lib(&dir);
    // DT_RPATH stays DT_RPATH.
    let a = dir.copy_fixture("usefoo-rpath", "a");
    patchelf_ok(["--force-rpath".as_ref(), "--set-rpath".as_ref(), libdir.as_os_str(), a.as_os_str()]);
    assert_eq!(dyn_values(&a, "RPATH"), vec![libdir.display().to_string()]);
    assert!(dyn_values(&a, "RUNPATH").is_empty());
    assert_runs(&a, "elf-usefoo: foo 42\n");
    // DT_RUNPATH becomes DT_RPATH.
    let b = dir.copy_fixture("usefoo", "b");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), "--force-rpath".as_ref(), b.as_os_str()]);
    assert_eq!(dyn_values(&b, "RPATH"), vec![libdir.display().to_string()]);
    assert!(dyn_values(&b, "RUNPATH").is_empty());
    assert_runs(&b, "elf-usefoo: foo 42\n");
    assert_golden("rpath_force", &dump(&b));
    // A file without any: a new DT_RPATH.
    let c = dir.copy_fixture("hello", "c");
    patchelf_ok(["--force-rpath".as_ref(), "--set-rpath".as_ref(), "/opt/c".as_ref(), c.as_os_str()]);
    assert_eq!(dyn_values(&c, "RPATH"), vec!["/opt/c"]);
    assert_runs(&c, "elf-hello: ok 1\n");
}

#[test]
fn set_rpath_on_a_file_without_one_adds_runpath() {
    let dir = TestDir::new("rpath_new");
    for name in ["hello", "hello-nopie", "hello-relro", "manysyms", "init"] {
        let prog = dir.copy_fixture(name, name);
        patchelf_ok(["--set-rpath".as_ref(), "/opt/new/rpath".as_ref(), prog.as_os_str()]);
        assert_eq!(dyn_values(&prog, "RUNPATH"), vec!["/opt/new/rpath"], "{name}");
        check_layout(&prog);
        assert_runs(&prog, expected_output(name).unwrap());
        assert_golden(&format!("rpath_new_{}", name.replace('-', "_")), &dump(&prog));
    }
}

#[test]
fn set_rpath_very_long() {
    let dir = TestDir::new("rpath_very_long");
    let prog = dir.copy_fixture("usefoo", "prog");
    let libdir = relocated_lib(&dir);
    let mut rpath: Vec<String> = (0..200).map(|i| format!("/nonexistent/dir/number/{i:04}")).collect();
    rpath.push(libdir.display().to_string());
    let rpath = rpath.join(":");
    patchelf_ok(["--set-rpath".as_ref(), rpath.as_ref(), prog.as_os_str()]);
    assert_eq!(print_rpath(&prog), format!("{rpath}\n"));
    check_layout(&prog);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}

#[test]
fn set_rpath_shorter_in_place() {
    let dir = TestDir::new("rpath_shorter");
    let prog = dir.copy_fixture("usefoo", "prog");
    let size = fs::metadata(&prog).unwrap().len();
    patchelf_ok(["--set-rpath".as_ref(), "/x".as_ref(), prog.as_os_str()]);
    assert_eq!(print_rpath(&prog), "/x\n");
    assert_eq!(fs::metadata(&prog).unwrap().len(), size, "a shorter rpath fits in place");
    check_layout(&prog);
}

#[test]
fn add_rpath_appends() {
    let dir = TestDir::new("rpath_add");
    let prog = dir.copy_fixture("usefoo", "prog");
    let libdir = relocated_lib(&dir);
    patchelf_ok(["--add-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_eq!(print_rpath(&prog), format!("{}:{}\n", libfoo_dir().display(), libdir.display()));
    assert_runs(&prog, "elf-usefoo: foo 42\n");
    let h = dir.copy_fixture("hello", "hello");
    patchelf_ok(["--add-rpath".as_ref(), "/opt/first".as_ref(), h.as_os_str()]);
    assert_eq!(print_rpath(&h), "/opt/first\n");
    assert_runs(&h, "elf-hello: ok 1\n");
    assert_golden("rpath_add", &dump(&prog));
}

#[test]
fn remove_rpath_removes_both_tags_and_the_program_no_longer_finds_its_library() {
    let dir = TestDir::new("rpath_remove");
    for name in ["usefoo", "usefoo-rpath", "usefoo-nopie"] {
        let prog = dir.copy_fixture(name, name);
        let size = fs::metadata(&prog).unwrap().len();
        patchelf_ok(["--remove-rpath".as_ref(), prog.as_os_str()]);
        assert_eq!(print_rpath(&prog), "\n");
        assert!(dyn_values(&prog, "RPATH").is_empty() && dyn_values(&prog, "RUNPATH").is_empty());
        assert_eq!(fs::metadata(&prog).unwrap().len(), size, "{name}: removal does not grow the file");
        let run = run_program(&prog, &[]);
        assert_eq!(run.code, Some(127), "{name}: {run:#?}");
        assert!(run.stderr.contains("libelffoo.so.1"), "{run:#?}");
        check_layout(&prog);
    }
    let prog = dir.join("usefoo");
    assert_golden("rpath_remove", &dump(&prog));
    // Removing what is not there changes nothing.
    let h = dir.copy_fixture("hello", "hello");
    let before = fs::read(&h).unwrap();
    patchelf_ok(["--remove-rpath".as_ref(), h.as_os_str()]);
    assert_unchanged(&h, &before);
}

#[test]
fn shrink_rpath_keeps_only_directories_that_provide_a_needed_library() {
    let dir = TestDir::new("rpath_shrink");
    let prog = dir.copy_fixture("usefoo", "prog");
    let empty = dir.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let lib = libfoo_dir().display().to_string();
    let rpath = format!("/nonexistent:{}:$ORIGIN/rel:{lib}:{}", empty.display(), lib);
    patchelf_ok(["--set-rpath".as_ref(), rpath.as_ref(), prog.as_os_str()]);
    patchelf_ok(["--shrink-rpath".as_ref(), prog.as_os_str()]);
    // $ORIGIN entries are kept verbatim; a directory already providing the library is not kept twice.
    assert_eq!(print_rpath(&prog), format!("$ORIGIN/rel:{lib}\n"));
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}

#[test]
fn shrink_rpath_with_allowed_prefixes_drops_other_entries() {
    let dir = TestDir::new("rpath_shrink_prefixes");
    let lib = libfoo_dir().display().to_string();
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok(["--set-rpath".as_ref(), format!("/nonexistent:{lib}").as_ref(), prog.as_os_str()]);
    patchelf_ok([
        "--shrink-rpath".as_ref(),
        "--allowed-rpath-prefixes".as_ref(),
        "/opt:/srv".as_ref(),
        prog.as_os_str(),
    ]);
    assert_eq!(print_rpath(&prog), "\n");
    let prog2 = dir.copy_fixture("usefoo", "prog2");
    let allowed = format!("/srv:{}", libfoo_dir().parent().unwrap().display());
    patchelf_ok(["--set-rpath".as_ref(), format!("/nonexistent:{lib}").as_ref(), prog2.as_os_str()]);
    patchelf_ok([
        "--shrink-rpath".as_ref(),
        "--allowed-rpath-prefixes".as_ref(),
        allowed.as_ref(),
        prog2.as_os_str(),
    ]);
    assert_eq!(print_rpath(&prog2), format!("{lib}\n"));
    assert_runs(&prog2, "elf-usefoo: foo 42\n");
}

#[test]
fn shrink_rpath_ignores_libraries_of_another_machine() {
    let Some(lib32_src) = optional_fixture("hello32") else { return };
    let dir = TestDir::new("rpath_shrink_machine");
    let prog = dir.copy_fixture("usefoo", "prog");
    // A directory holding a 32-bit file named like the needed library must not be kept.
    let wrong = dir.join("wrong");
    fs::create_dir_all(&wrong).unwrap();
    fs::copy(lib32_src, wrong.join("libelffoo.so.1")).unwrap();
    let lib = libfoo_dir().display().to_string();
    patchelf_ok(["--set-rpath".as_ref(), format!("{}:{lib}", wrong.display()).as_ref(), prog.as_os_str()]);
    patchelf_ok(["--shrink-rpath".as_ref(), prog.as_os_str()]);
    assert_eq!(print_rpath(&prog), format!("{lib}\n"));
}

#[test]
fn old_rpath_string_is_not_left_behind() {
    // patchelf overwrites an unshared old rpath so that Nix does not see a retained reference; a drop-in must not
    // leave the old directory name readable in the file either.
    let dir = TestDir::new("rpath_old_gone");
    let prog = dir.copy_fixture("usefoo", "prog");
    let old = libfoo_dir().display().to_string();
    patchelf_ok([
        "--set-rpath".as_ref(),
        "/a/new/and/much/longer/rpath/value/than/before/ever/was".as_ref(),
        prog.as_os_str(),
    ]);
    let bytes = fs::read(&prog).unwrap();
    assert!(
        !bytes.windows(old.len()).any(|w| w == old.as_bytes()),
        "the old rpath {old} is still in the file"
    );
}

#[test]
fn an_empty_run_path_on_a_file_without_one_changes_nothing() {
    // patchelf compares the new value with the old one, an absent run path counting as "".
    let dir = TestDir::new("rpath_empty_noop");
    for name in ["hello", "libfoo"] {
        let file = dir.copy_fixture(name, name);
        let before = fs::read(&file).unwrap();
        for op in ["--set-rpath", "--add-rpath"] {
            patchelf_ok([op.as_ref(), "".as_ref(), file.as_os_str()]);
            assert_unchanged(&file, &before);
        }
    }
}

/// `usefoo-rpath` with its `DT_DEBUG` entry turned into a `DT_RUNPATH` naming `libc.so.6`'s string (a harmless
/// relative directory): a file with both tags, which no current linker writes.
fn with_rpath_and_runpath(dir: &TestDir) -> std::path::PathBuf {
    let prog = dir.copy_fixture("usefoo-rpath", "both");
    let mut bytes = fs::read(&prog).unwrap();
    let dynamic = segments(&prog).into_iter().find(|s| s.kind == "DYNAMIC").unwrap();
    let entry = |b: &[u8], i: usize| {
        let at = dynamic.offset as usize + 16 * i;
        let word = |o: usize| u64::from_le_bytes(b[at + o..at + o + 8].try_into().unwrap());
        (word(0), word(8))
    };
    let count = (dynamic.filesz / 16) as usize;
    let needed_libc = (0..count).rev().map(|i| entry(&bytes, i)).find(|e| e.0 == 1).unwrap().1;
    let debug = (0..count).find(|&i| entry(&bytes, i).0 == 21).expect("DT_DEBUG");
    let at = dynamic.offset as usize + 16 * debug;
    bytes[at..at + 8].copy_from_slice(&29u64.to_le_bytes());
    bytes[at + 8..at + 16].copy_from_slice(&needed_libc.to_le_bytes());
    fs::write(&prog, bytes).unwrap();
    assert_eq!(dyn_values(&prog, "RUNPATH"), vec!["libc.so.6"]);
    prog
}

#[test]
fn force_rpath_with_both_tags_updates_only_the_converted_runpath() {
    let dir = TestDir::new("rpath_both_tags");
    let libdir = fixture("libfoo").parent().unwrap().display().to_string();
    // DT_RUNPATH wins for reading; with --force-rpath it becomes a DT_RPATH and alone takes the new value, the
    // DT_RPATH that was already there keeps its own (as patchelf does).
    let a = with_rpath_and_runpath(&dir);
    assert_eq!(patchelf_ok(["--print-rpath".as_ref(), a.as_os_str()]), "libc.so.6\n");
    patchelf_ok(["--force-rpath".as_ref(), "--add-rpath".as_ref(), "/opt/added".as_ref(), a.as_os_str()]);
    assert_eq!(dyn_values(&a, "RPATH"), vec![libdir.clone(), "libc.so.6:/opt/added".to_owned()]);
    assert!(dyn_values(&a, "RUNPATH").is_empty());
    assert_eq!(patchelf_ok(["--print-needed".as_ref(), a.as_os_str()]), "libelffoo.so.1\nlibc.so.6\n");
    // Without --force-rpath both entries take the value and keep their tags.
    let b = with_rpath_and_runpath(&dir);
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_ref(), b.as_os_str()]);
    assert_eq!(dyn_values(&b, "RPATH"), vec![libdir.clone()]);
    assert_eq!(dyn_values(&b, "RUNPATH"), vec![libdir]);
    assert_runs(&b, "elf-usefoo: foo 42\n");
}
