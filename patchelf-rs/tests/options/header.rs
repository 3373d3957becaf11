//! Header-level options and layout switches: execstack, OS ABI, `--page-size`, `--no-sort`,
//! `--no-clobber-old-sections`.

use crate::common::*;
use std::fs;

fn gnu_stack_flags(p: &std::path::Path) -> String {
    segments(p).into_iter().find(|s| s.kind == "GNU_STACK").map(|s| s.flags).unwrap_or_default()
}

#[test]
fn print_execstack() {
    assert_eq!(patchelf_ok(["--print-execstack".as_ref(), fixture("hello").as_os_str()]), "execstack: -\n");
    assert_eq!(
        patchelf_ok(["--print-execstack".as_ref(), fixture("hello-execstack").as_os_str()]),
        "execstack: X\n"
    );
    assert_eq!(patchelf_ok(["--print-execstack".as_ref(), fixture("libfoo").as_os_str()]), "execstack: -\n");
}

#[test]
fn set_and_clear_execstack() {
    let dir = TestDir::new("execstack");
    let prog = dir.copy_fixture("hello", "prog");
    let before = fs::read(&prog).unwrap();
    assert_eq!(gnu_stack_flags(&prog), "RW");
    patchelf_ok(["--set-execstack".as_ref(), prog.as_os_str()]);
    assert_eq!(gnu_stack_flags(&prog), "RWE");
    assert_eq!(fs::metadata(&prog).unwrap().len(), before.len() as u64, "a flag flip in place");
    assert_eq!(patchelf_ok(["--print-execstack".as_ref(), prog.as_os_str()]), "execstack: X\n");
    assert_runs(&prog, "elf-hello: ok 1\n");
    assert_golden("execstack_set", &dump(&prog));
    patchelf_ok(["--clear-execstack".as_ref(), prog.as_os_str()]);
    assert_eq!(gnu_stack_flags(&prog), "RW");
    assert_unchanged(&prog, &before);

    let x = dir.copy_fixture("hello-execstack", "x");
    patchelf_ok(["--clear-execstack".as_ref(), x.as_os_str()]);
    assert_eq!(patchelf_ok(["--print-execstack".as_ref(), x.as_os_str()]), "execstack: -\n");
    assert_runs(&x, "elf-hello: ok 1\n");
}

#[test]
fn os_abi_print_and_set() {
    let dir = TestDir::new("os_abi");
    let prog = dir.copy_fixture("hello", "prog");
    assert_eq!(patchelf_ok(["--print-os-abi".as_ref(), prog.as_os_str()]), "System V\n");
    let cases = [
        ("linux", "Linux", 3),
        ("  FreeBSD ", "FreeBSD", 9),
        ("gnu", "Linux", 3),
        ("hurd", "GNU Hurd", 4),
        ("NetBSD", "NetBSD", 2),
        ("sysv", "System V", 0),
        ("system-v", "System V", 0),
    ];
    for (arg, printed, byte) in cases {
        patchelf_ok(["--set-os-abi".as_ref(), arg.as_ref(), prog.as_os_str()]);
        assert_eq!(
            patchelf_ok(["--print-os-abi".as_ref(), prog.as_os_str()]),
            format!("{printed}\n"),
            "{arg}"
        );
        assert_eq!(fs::read(&prog).unwrap()[7], byte, "{arg}: EI_OSABI");
    }
    let before = fs::read(&prog).unwrap();
    let run =
        patchelf(["--set-os-abi".as_ref(), "plan9-from-outer-space".as_ref(), prog.as_os_str()]).failure(1);
    assert_error(&run, &prog, "unrecognized OS ABI");
    assert_unchanged(&prog, &before);
    // Only the EI_OSABI byte differs from the original.
    let orig = fs::read(fixture("hello")).unwrap();
    patchelf_ok(["--set-os-abi".as_ref(), "linux".as_ref(), prog.as_os_str()]);
    let now = fs::read(&prog).unwrap();
    let diffs: Vec<usize> = (0..orig.len()).filter(|&i| orig[i] != now[i]).collect();
    assert_eq!(diffs, vec![7]);
    assert_runs(&prog, "elf-hello: ok 1\n");
}

#[test]
fn page_size_option_aligns_new_segments() {
    let dir = TestDir::new("page_size");
    for name in ["usefoo", "usefoo-nopie"] {
        let prog = dir.copy_fixture(name, name);
        let long = format!(
            "{}:/a/long/extra/entry/that/does/not/fit/in/place",
            fixture("libfoo").parent().unwrap().display()
        );
        patchelf_ok([
            "--page-size".as_ref(),
            "65536".as_ref(),
            "--set-rpath".as_ref(),
            long.as_ref(),
            prog.as_os_str(),
        ]);
        check_layout(&prog);
        for s in segments(&prog).iter().filter(|s| s.kind == "LOAD") {
            assert_eq!(s.offset % 4096, s.vaddr % 4096, "{name}: {s:?}");
        }
        assert_runs(&prog, "elf-usefoo: foo 42\n");
    }
}

#[test]
fn page_size_below_the_files_alignment_still_gives_runnable_files() {
    // patchelf aligns a new segment to at least the LOADs' own alignment, so an odd or small --page-size is harmless.
    let dir = TestDir::new("page_size_small");
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let long = format!("{}:/a/long/extra/entry/that/does/not/fit/in/place", libdir.display());
    for page in ["1", "3", "1024", "3000"] {
        let lib = dir.copy_file(&fixture("libfoo"), "lib/libelffoo.so.1");
        let prog = dir.copy_fixture("usefoo", "prog");
        for file in [&lib, &prog] {
            patchelf_ok([
                "--page-size".as_ref(),
                page.as_ref(),
                "--set-rpath".as_ref(),
                long.as_ref(),
                file.as_os_str(),
            ]);
            check_layout(file);
            for s in segments(file).iter().filter(|s| s.kind == "LOAD") {
                assert!(s.align.is_power_of_two() && s.align >= 4096, "--page-size {page}: {s:?}");
                assert_eq!(s.offset % 4096, s.vaddr % 4096, "--page-size {page}: {s:?}");
            }
        }
        // ld.so maps the edited library too (it checks each LOAD's alignment).
        assert_runs(&prog, "elf-usefoo: foo 42\n");
    }
}

#[test]
fn no_sort_gives_an_equivalent_result() {
    let dir = TestDir::new("no_sort");
    let a = dir.copy_fixture("usefoo", "a");
    let b = dir.copy_fixture("usefoo", "b");
    let long = "/a/long/new/rpath/that/does/not/fit/in/place/at/all";
    patchelf_ok([
        "--no-sort".as_ref(),
        "--set-rpath".as_ref(),
        long.as_ref(),
        "--add-needed".as_ref(),
        "libm.so.6".as_ref(),
        a.as_os_str(),
    ]);
    patchelf_ok([
        "--set-rpath".as_ref(),
        long.as_ref(),
        "--add-needed".as_ref(),
        "libm.so.6".as_ref(),
        b.as_os_str(),
    ]);
    assert_eq!(dump(&a), dump(&b));
    check_layout(&a);
    let libdir = fixture("libfoo").parent().unwrap().to_owned();
    patchelf_ok(["--no-sort".as_ref(), "--add-rpath".as_ref(), libdir.as_os_str(), a.as_os_str()]);
    assert_runs(&a, "elf-usefoo: foo 42\n");
}

#[test]
fn no_clobber_old_sections_keeps_the_old_bytes() {
    // Moved sections are normally overwritten (patchelf uses 'Z'); with the flag their old bytes stay, so the old
    // rpath string remains readable at its old offset.
    let dir = TestDir::new("no_clobber");
    let a = dir.copy_fixture("usefoo", "a");
    let b = dir.copy_fixture("usefoo", "b");
    let old = fixture("libfoo").parent().unwrap().display().to_string();
    let long = format!("{old}:/and/a/much/longer/tail/that/cannot/possibly/fit/in/the/old/string/slot");
    patchelf_ok(["--no-clobber-old-sections".as_ref(), "--set-rpath".as_ref(), long.as_ref(), a.as_os_str()]);
    patchelf_ok(["--set-rpath".as_ref(), long.as_ref(), b.as_os_str()]);
    let original = fs::read(fixture("usefoo")).unwrap();
    let a_bytes = fs::read(&a).unwrap();
    // The original .dynstr range.
    let sh = readelf(&["-S"], &fixture("usefoo"));
    let line = sh.lines().find(|l| l.contains(" .dynstr ")).expect(".dynstr");
    let tok: Vec<&str> = line.split(']').nth(1).unwrap().split_whitespace().collect();
    let (off, size) =
        (usize::from_str_radix(tok[3], 16).unwrap(), usize::from_str_radix(tok[4], 16).unwrap());
    // patchelf blanks the old rpath string itself with 'X' (so no stale reference stays); every other byte of the
    // old .dynstr must be kept.
    let rpath_at =
        original[off..off + size].windows(old.len()).position(|w| w == old.as_bytes()).expect("old rpath");
    for i in 0..size {
        let (was, now) = (original[off + i], a_bytes[off + i]);
        let in_rpath = (rpath_at..rpath_at + old.len()).contains(&i);
        assert!(
            was == now || (in_rpath && now == b'X'),
            "old .dynstr byte {i} changed: {was:#x} -> {now:#x}"
        );
    }
    assert_eq!(patchelf_ok(["--print-rpath".as_ref(), a.as_os_str()]), format!("{long}\n"));
    assert_eq!(patchelf_ok(["--print-rpath".as_ref(), b.as_os_str()]), format!("{long}\n"));
    assert_runs(&a, "elf-usefoo: foo 42\n");
    assert_runs(&b, "elf-usefoo: foo 42\n");
    check_layout(&a);
}

#[test]
fn print_execstack_wins_over_set_and_clear() {
    // patchelf runs one execstack action per call: printing first, then clearing, then setting.
    let dir = TestDir::new("execstack_precedence");
    let prog = dir.copy_fixture("hello", "prog");
    let before = fs::read(&prog).unwrap();
    let out = patchelf_ok(["--set-execstack".as_ref(), "--print-execstack".as_ref(), prog.as_os_str()]);
    assert_eq!(out, "execstack: -\n");
    assert_unchanged(&prog, &before);
    let x = dir.copy_fixture("hello-execstack", "x");
    let x_before = fs::read(&x).unwrap();
    assert_eq!(
        patchelf_ok(["--print-execstack".as_ref(), "--clear-execstack".as_ref(), x.as_os_str()]),
        "execstack: X\n"
    );
    assert_unchanged(&x, &x_before);
    patchelf_ok(["--set-execstack".as_ref(), "--clear-execstack".as_ref(), x.as_os_str()]);
    assert_eq!(gnu_stack_flags(&x), "RW");
}

#[test]
fn os_abi_names_outside_patchelfs_list_are_refused() {
    let dir = TestDir::new("os_abi_refused");
    let prog = dir.copy_fixture("hello", "prog");
    let before = fs::read(&prog).unwrap();
    for name in
        ["SYS-V", "sys_v", "systemv", "Sys V", "hpux", "gnulinux", "GNU/Linux", "gnuhurd", "none", "3"]
    {
        let run = patchelf(["--set-os-abi".as_ref(), name.as_ref(), prog.as_os_str()]).failure(1);
        assert_error(&run, &prog, "unrecognized OS ABI");
        assert_unchanged(&prog, &before);
    }
    for (name, printed) in
        [("HP-UX", "HP-UX"), ("GNU Hurd", "GNU Hurd"), ("gnu-hurd", "GNU Hurd"), ("\tTru64\n", "Tru64")]
    {
        patchelf_ok(["--set-os-abi".as_ref(), name.as_ref(), prog.as_os_str()]);
        assert_eq!(
            patchelf_ok(["--print-os-abi".as_ref(), prog.as_os_str()]),
            format!("{printed}\n"),
            "{name:?}"
        );
    }
}
