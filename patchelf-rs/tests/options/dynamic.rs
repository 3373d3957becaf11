//! Other `.dynamic` edits: soname, DF_1_NODEFLIB, symbol versions, DT_DEBUG, dynamic symbol renaming and the
//! resolution-cache note.

use crate::common::*;
use std::fs;
use std::path::Path;

#[test]
fn print_soname() {
    assert_eq!(patchelf_ok(["--print-soname".as_ref(), fixture("libfoo").as_os_str()]), "libelffoo.so.1\n");
    assert_eq!(
        patchelf_ok(["--print-soname".as_ref(), fixture("libfoo-alt").as_os_str()]),
        "libelfalt.so.1\n"
    );
    // Without DT_SONAME patchelf 0.19 prints nothing and succeeds.
    let run = patchelf(["--print-soname".as_ref(), fixture("libgreet").as_os_str()]).success();
    assert_eq!(run.stdout, "");
}

#[test]
fn set_soname_replaces_and_adds() {
    let dir = TestDir::new("soname_set");
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let lib = dir.copy_fixture("libfoo", "lib/libelffoo.so.1");
    patchelf_ok([
        "--set-soname".as_ref(),
        "libelffoo-with-a-much-longer-soname.so.1".as_ref(),
        lib.as_os_str(),
    ]);
    assert_eq!(
        patchelf_ok(["--print-soname".as_ref(), lib.as_os_str()]),
        "libelffoo-with-a-much-longer-soname.so.1\n"
    );
    assert_eq!(dyn_values(&lib, "SONAME"), vec!["libelffoo-with-a-much-longer-soname.so.1"]);
    check_layout(&lib);
    assert_golden("soname_set", &dump(&lib));
    // The patched library still serves a program that was linked against it.
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-usefoo: foo 42\n");

    let greet = dir.copy_fixture("libgreet", "libelfgreet.so");
    patchelf_ok(["--set-soname".as_ref(), "libelfgreet.so.7".as_ref(), greet.as_os_str()]);
    assert_eq!(patchelf_ok(["--print-soname".as_ref(), greet.as_os_str()]), "libelfgreet.so.7\n");
    check_layout(&greet);
    assert_golden("soname_added", &dump(&greet));
}

#[test]
fn set_soname_repeatedly_stays_bounded() {
    let dir = TestDir::new("soname_repeated");
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let lib = dir.copy_fixture("libfoo", "lib/libelffoo.so.1");
    let start = fs::metadata(&lib).unwrap().len();
    for i in 0..40 {
        patchelf_ok(["--set-soname".as_ref(), format!("libelffoo.so.{i}").as_ref(), lib.as_os_str()]);
    }
    let loads = segments(&lib).iter().filter(|s| s.kind == "LOAD").count();
    assert!(loads <= 4 + 3, "40 edits added too many LOADs: {loads}");
    let grown = fs::metadata(&lib).unwrap().len() - start;
    assert!(grown < 40 * 4096, "grew by {grown} bytes after 40 small edits");
    check_layout(&lib);
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}

#[test]
fn set_soname_on_an_executable_is_a_silent_no_op() {
    let dir = TestDir::new("soname_exec");
    let prog = dir.copy_fixture("hello-nopie", "prog");
    let before = fs::read(&prog).unwrap();
    let run = patchelf(["--set-soname".as_ref(), "libx.so".as_ref(), prog.as_os_str()]).success();
    assert!(run.stdout.is_empty() && run.stderr.is_empty(), "{run:#?}");
    assert_unchanged(&prog, &before);
}

#[test]
fn no_default_lib_sets_nodeflib() {
    let dir = TestDir::new("no_default_lib");
    let prog = dir.copy_fixture("hello", "prog");
    patchelf_ok(["--no-default-lib".as_ref(), prog.as_os_str()]);
    let flags = dyn_values(&prog, "FLAGS_1");
    assert!(flags.len() == 1 && flags[0].contains("NODEFLIB"), "{flags:?}");
    check_layout(&prog);
    // The loader now skips the default directories and the cache: libc is only found through an rpath.
    let run = run_program(&prog, &[]);
    assert!(!run.ok() && run.stderr.contains("libc.so.6"), "{run:#?}");
    patchelf_ok(["--set-rpath".as_ref(), "/lib/x86_64-linux-gnu".as_ref(), prog.as_os_str()]);
    assert_runs(&prog, "elf-hello: ok 1\n");
    assert_golden("no_default_lib", &dump(&prog));
    // Set twice: one FLAGS_1, unchanged file.
    let before = fs::read(&prog).unwrap();
    patchelf_ok(["--no-default-lib".as_ref(), prog.as_os_str()]);
    assert_unchanged(&prog, &before);
}

#[test]
fn no_default_lib_keeps_existing_flags() {
    let dir = TestDir::new("no_default_lib_flags");
    let prog = dir.copy_fixture("hello-relro", "prog");
    let before = dyn_values(&prog, "FLAGS_1");
    assert!(before.len() == 1 && before[0].contains("NOW"), "fixture has FLAGS_1 NOW: {before:?}");
    patchelf_ok(["--no-default-lib".as_ref(), prog.as_os_str()]);
    let after = dyn_values(&prog, "FLAGS_1");
    assert!(after.len() == 1 && after[0].contains("NOW") && after[0].contains("NODEFLIB"), "{after:?}");
}

fn dynsym_versions(path: &Path, name: &str) -> Vec<String> {
    readelf(&["--dyn-syms"], path)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(7).map(str::to_owned))
        .filter(|s| s == name || s.starts_with(&format!("{name}@")))
        .collect()
}

#[test]
fn clear_symbol_version() {
    let dir = TestDir::new("clear_symbol_version");
    let prog = dir.copy_fixture("usefoo", "prog");
    assert_eq!(dynsym_versions(&prog, "elf_foo_value"), vec!["elf_foo_value@ELFFOO_1.0"]);
    assert!(dynsym_versions(&prog, "printf")[0].starts_with("printf@GLIBC_"));
    let size = fs::metadata(&prog).unwrap().len();
    patchelf_ok([
        "--clear-symbol-version".as_ref(),
        "elf_foo_value".as_ref(),
        "--clear-symbol-version".as_ref(),
        "printf".as_ref(),
        prog.as_os_str(),
    ]);
    assert_eq!(dynsym_versions(&prog, "elf_foo_value"), vec!["elf_foo_value"]);
    assert_eq!(dynsym_versions(&prog, "printf"), vec!["printf"]);
    assert_eq!(dynsym_versions(&prog, "elf_foo_name"), vec!["elf_foo_name@ELFFOO_1.0"], "others keep theirs");
    assert_eq!(fs::metadata(&prog).unwrap().len(), size, "in place");
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}

#[test]
fn add_debug_tag() {
    let dir = TestDir::new("add_debug_tag");
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let lib = dir.copy_fixture("libfoo", "lib/libelffoo.so.1");
    assert!(dyn_values(&lib, "DEBUG").is_empty());
    patchelf_ok(["--add-debug-tag".as_ref(), lib.as_os_str()]);
    assert_eq!(dyn_values(&lib, "DEBUG").len(), 1);
    check_layout(&lib);
    assert_golden("add_debug_tag", &dump(&lib));
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
    // Executables have DT_DEBUG already: nothing to do.
    let h = dir.copy_fixture("hello", "hello");
    assert_eq!(dyn_values(&h, "DEBUG").len(), 1);
    let before = fs::read(&h).unwrap();
    patchelf_ok(["--add-debug-tag".as_ref(), h.as_os_str()]);
    assert_unchanged(&h, &before);
}

fn dynsym_names(path: &Path) -> Vec<String> {
    readelf(&["--dyn-syms"], path)
        .lines()
        .filter(|l| l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()))
        .filter_map(|l| l.split_whitespace().nth(7).map(|s| s.split('@').next().unwrap_or(s).to_owned()))
        .collect()
}

#[test]
fn rename_dynamic_symbols_in_library_and_program() {
    let dir = TestDir::new("rename_symbols");
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let lib = dir.copy_fixture("libgreet", "lib/libelfgreet.so");
    let prog = dir.copy_fixture("usegreet", "prog");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-usegreet: hello from libgreet\n");
    let map = dir.join("map.txt");
    write(&map, "elf_old_greeting elf_brand_new_and_longer_greeting_name\n");
    patchelf_ok(["--rename-dynamic-symbols".as_ref(), map.as_os_str(), lib.as_os_str()]);
    let names = dynsym_names(&lib);
    assert!(names.iter().any(|n| n == "elf_brand_new_and_longer_greeting_name"), "{names:?}");
    assert!(!names.iter().any(|n| n == "elf_old_greeting"), "{names:?}");
    assert!(names.iter().any(|n| n == "elf_unrelated_helper"), "{names:?}");
    check_layout(&lib);
    // Only the library renamed: the program's reference no longer resolves (the hash tables were rebuilt, or the
    // lookup would still find the old name).
    let run = run_program(&prog, &[]);
    assert!(!run.ok() && run.stderr.contains("elf_old_greeting"), "{run:#?}");
    patchelf_ok(["--rename-dynamic-symbols".as_ref(), map.as_os_str(), prog.as_os_str()]);
    assert!(dynsym_names(&prog).iter().any(|n| n == "elf_brand_new_and_longer_greeting_name"));
    check_layout(&prog);
    assert_runs(&prog, "elf-usegreet: hello from libgreet\n");
    assert_golden("rename_symbols_lib", &dump(&lib));
    assert_golden("rename_symbols_prog", &dump(&prog));
}

#[test]
fn rename_dynamic_symbols_there_and_back_restores_the_symbol_table() {
    let dir = TestDir::new("rename_symbols_back");
    let prog = dir.copy_fixture("manysyms", "prog");
    // Rebuilding .gnu.hash may reorder .dynsym, so compare the sorted names, as `nm -D` shows them.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let original = sorted(dynsym_names(&prog));
    let there: String = (1000..3000)
        .map(|i| format!("elf_exported_function_with_a_long_name_{i} elf_renamed_{i}\n"))
        .collect();
    let back: String = (1000..3000)
        .map(|i| format!("elf_renamed_{i} elf_exported_function_with_a_long_name_{i}\n"))
        .collect();
    let (m1, m2) = (dir.join("there"), dir.join("back"));
    write(&m1, &there);
    write(&m2, &back);
    patchelf_ok(["--rename-dynamic-symbols".as_ref(), m1.as_os_str(), prog.as_os_str()]);
    let renamed = dynsym_names(&prog);
    assert!(renamed.iter().any(|n| n == "elf_renamed_1234"), "renamed");
    assert_runs(&prog, "elf-manysyms: 10\n");
    patchelf_ok(["--rename-dynamic-symbols".as_ref(), m2.as_os_str(), prog.as_os_str()]);
    assert_eq!(sorted(dynsym_names(&prog)), original);
    assert_runs(&prog, "elf-manysyms: 10\n");
}

#[test]
fn rename_dynamic_symbols_rejects_bad_maps() {
    let dir = TestDir::new("rename_symbols_bad");
    let lib = dir.copy_fixture("libgreet", "libelfgreet.so");
    let before = fs::read(&lib).unwrap();
    for (i, text) in ["elf_old_greeting\n", "elf_old_greeting new@V1\n", "a b\na c\n"].iter().enumerate() {
        let map = dir.join(format!("map{i}"));
        write(&map, text);
        let run =
            patchelf(["--rename-dynamic-symbols".as_ref(), map.as_os_str(), lib.as_os_str()]).failure(1);
        error_message(&run);
        assert_unchanged(&lib, &before);
    }
    let missing = dir.join("no-map");
    let run =
        patchelf(["--rename-dynamic-symbols".as_ref(), missing.as_os_str(), lib.as_os_str()]).failure(1);
    error_message(&run);
}

fn note_owners(path: &Path) -> Vec<String> {
    readelf(&["-n"], path)
        .lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (t.len() >= 3 && t[1].starts_with("0x")).then(|| t[0].to_owned())
        })
        .collect()
}

#[test]
fn build_resolution_cache_adds_a_nixos_note() {
    let dir = TestDir::new("resolution_cache");
    let prog = dir.copy_fixture("usefoo", "prog");
    assert!(!note_owners(&prog).iter().any(|o| o == "NixOS"));
    patchelf_ok(["--build-resolution-cache".as_ref(), prog.as_os_str()]);
    assert!(note_owners(&prog).iter().any(|o| o == "NixOS"), "{:?}", note_owners(&prog));
    let bytes = fs::read(&prog).unwrap();
    let lib = fixture("libfoo").display().to_string();
    assert!(bytes.windows(lib.len()).any(|w| w == lib.as_bytes()), "the note holds the resolved path {lib}");
    check_layout(&prog);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
    // With --force-rpath it is an error, and the file is untouched.
    let other = dir.copy_fixture("usefoo", "other");
    let before = fs::read(&other).unwrap();
    let run = patchelf(["--build-resolution-cache".as_ref(), "--force-rpath".as_ref(), other.as_os_str()])
        .failure(1);
    error_message(&run);
    assert_unchanged(&other, &before);
}

#[test]
fn rename_dynamic_symbols_map_errors_use_patchelfs_wording() {
    let dir = TestDir::new("rename_symbols_wording");
    let lib = dir.copy_fixture("libgreet", "libelfgreet.so");
    let before = fs::read(&lib).unwrap();
    let cases = [
        ("a b\nelf_old_greeting\n", "2: Map file line is missing the second element".to_owned()),
        ("a new@V1\n", "1: Name pair contains version tag: a new@V1".to_owned()),
        ("a b\nc d\na e\n", "3: Name 'a' appears twice in the map file".to_owned()),
    ];
    for (i, (text, wording)) in cases.iter().enumerate() {
        let map = dir.join(format!("map{i}"));
        write(&map, text);
        let run =
            patchelf(["--rename-dynamic-symbols".as_ref(), map.as_os_str(), lib.as_os_str()]).failure(1);
        assert_error(&run, &lib, &format!("{}:{wording}", map.display()));
        assert_unchanged(&lib, &before);
    }
    let missing = dir.join("no-map");
    let run =
        patchelf(["--rename-dynamic-symbols".as_ref(), missing.as_os_str(), lib.as_os_str()]).failure(1);
    assert_eq!(
        error_message(&run),
        format!("Cannot open map file {}: No such file or directory", missing.display())
    );
}

#[test]
fn rename_dynamic_symbols_reads_the_map_up_to_its_first_blank_line() {
    // patchelf stops at a line without a name, so a later pair (even a malformed one) is ignored.
    let dir = TestDir::new("rename_symbols_blank");
    let lib = dir.copy_fixture("libgreet", "libelfgreet.so");
    let original = dynsym_names(&lib);
    assert!(original.iter().any(|n| n.starts_with("elf_old_greeting")), "{original:?}");
    let map = dir.join("map");
    write(&map, "elf_old_greeting elf_new_greeting extra fields\n  \nnot@valid line\n");
    patchelf_ok(["--rename-dynamic-symbols".as_ref(), map.as_os_str(), lib.as_os_str()]);
    let names = dynsym_names(&lib);
    assert!(names.iter().any(|n| n.starts_with("elf_new_greeting")), "{names:?}");
    let before = fs::read(&lib).unwrap();
    write(&map, "\nelf_new_greeting elf_other\n");
    patchelf_ok(["--rename-dynamic-symbols".as_ref(), map.as_os_str(), lib.as_os_str()]);
    assert_unchanged(&lib, &before);
}

#[test]
fn clear_symbol_version_in_a_program_exporting_nothing() {
    // A non-PIE program's .gnu.hash hashes no symbol, so it cannot tell how many .dynsym entries there are.
    let dir = TestDir::new("clear_symbol_version_nopie");
    for name in ["hello-nopie", "hello32-nopie"] {
        let Some(src) = optional_fixture(name) else { continue };
        let prog = dir.copy_file(&src, name);
        assert!(dynsym_versions(&prog, "printf")[0].starts_with("printf@GLIBC_"), "{name}");
        patchelf_ok(["--clear-symbol-version".as_ref(), "printf".as_ref(), prog.as_os_str()]);
        assert_eq!(dynsym_versions(&prog, "printf"), vec!["printf"], "{name}");
        assert_runs(&prog, "elf-hello: ok 1\n");
    }
}

#[test]
fn static_programs_fail_or_warn_like_patchelf() {
    let dir = TestDir::new("static_dynamic_options");
    let Ok(prog) = compile_c(dir.path(), "static", "int main(void) { return 0; }\n", &["-static"]) else {
        test_support::unmet("no static C library");
        return;
    };
    let before = fs::read(&prog).unwrap();
    let map = dir.join("map");
    write(&map, "a b\n");
    let hint = ". The input file is most likely statically linked";
    let cases: [(Vec<&std::ffi::OsStr>, String); 2] = [
        (
            vec!["--clear-symbol-version".as_ref(), "printf".as_ref()],
            format!("cannot find section '.dynstr'{hint}"),
        ),
        (
            vec!["--rename-dynamic-symbols".as_ref(), map.as_os_str()],
            "cannot find section '.dynsym'".to_owned(),
        ),
    ];
    for (mut args, wording) in cases {
        args.push(prog.as_os_str());
        let run = patchelf(&args).failure(1);
        assert_error(&run, &prog, &wording);
        assert_unchanged(&prog, &before);
    }
    // Run over whole package trees, the resolution cache only warns about a static file.
    let run = patchelf(["--build-resolution-cache".as_ref(), prog.as_os_str()]).success();
    assert!(run.stderr.starts_with("warning: --build-resolution-cache:"), "{run:#?}");
    assert_unchanged(&prog, &before);
}

#[test]
fn resolution_cache_lists_libraries_by_name() {
    // patchelf orders the note's pairs by library name, whatever the DT_NEEDED order.
    let dir = TestDir::new("resolution_cache_order");
    let prog = dir.copy_fixture("usefoo", "prog");
    let libc_dir = "/usr/lib/x86_64-linux-gnu";
    if !Path::new(libc_dir).join("libc.so.6").exists() {
        test_support::unmet(format!("no {libc_dir}/libc.so.6"));
        return;
    }
    let libfoo_dir = fixture("libfoo").parent().unwrap().display().to_string();
    patchelf_ok(["--set-rpath".as_ref(), format!("{libfoo_dir}:{libc_dir}").as_ref(), prog.as_os_str()]);
    assert_eq!(patchelf_ok(["--print-needed".as_ref(), prog.as_os_str()]), "libelffoo.so.1\nlibc.so.6\n");
    patchelf_ok(["--build-resolution-cache".as_ref(), prog.as_os_str()]);
    let bytes = fs::read(&prog).unwrap();
    let want = format!("libc.so.6\0={libc_dir}/libc.so.6\0libelffoo.so.1\0={libfoo_dir}/libelffoo.so.1\0\0");
    assert!(bytes.windows(want.len()).any(|w| w == want.as_bytes()), "note descriptor {want:?} not found");
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}
