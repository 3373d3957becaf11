//! "Better than patchelf": the promises of issue 2 that patchelf 0.19 itself does not keep, one test each. Most of
//! these fail when `PATCHELF_UNDER_TEST` points at the real patchelf; that is the point of them.
//!
//! Contents: growth of one call bounded by a page; `--print-*` reads only headers; files without section headers;
//! trailing data kept in place; RELRO/NOTE/PROPERTY consistency and ELF-spec header order; byte-identical no-ops;
//! atomic output on write errors and on malformed inputs of a multi-file call; suffix `--replace-needed` in place.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PAGE: u64 = 4096;
const LD64: &str = "/lib64/ld-linux-x86-64.so.2";

fn len(p: &Path) -> u64 {
    fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display())).len()
}

/// A copy of the 64-bit loader at a path much longer than the original, so a new `PT_INTERP` cannot fit in place.
fn long_loader(dir: &TestDir) -> PathBuf {
    let deep = dir.join("a/much/longer/interpreter/path/than/before/lib64");
    fs::create_dir_all(&deep).unwrap();
    let dest = deep.join("ld-linux-x86-64.so.2");
    fs::copy(LD64, &dest).unwrap();
    dest
}

fn args(list: &[&str], file: &Path) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.push(file.display().to_string());
    v
}

// ---------------------------------------------------------------------------------------------------------------
// Growth

fn many_options(loader: &Path, exec: bool) -> Vec<String> {
    let greet = fixture("libgreet").parent().unwrap().display().to_string();
    let rpath = format!("/some/long/path/to/lib:/another/long/path/to/lib64:/lib/x86_64-linux-gnu:{greet}");
    let mut v = vec!["--set-rpath".into(), rpath, "--add-needed".into(), "libelfgreet.so".into()];
    v.extend([
        "--add-needed".into(),
        "libm.so.6".into(),
        "--no-default-lib".into(),
        "--add-debug-tag".into(),
    ]);
    v.extend(["--clear-symbol-version".into(), "printf".into()]);
    if exec {
        v.extend(["--set-interpreter".into(), loader.display().to_string()]);
    } else {
        v.extend(["--set-soname".into(), "libsomething-with-a-longer-soname.so.1".into()]);
    }
    v
}

#[test]
fn growth_of_one_call_with_many_options_is_at_most_one_page() {
    let dir = TestDir::new("growth_many_options");
    let loader = long_loader(&dir);
    let mut report = Vec::new();
    for (name, src, expected) in [
        ("ls", PathBuf::from("/bin/ls"), None),
        ("hello", fixture("hello"), Some("elf-hello: ok 1\n")),
        ("hello-nopie", fixture("hello-nopie"), Some("elf-hello: ok 1\n")),
        ("hello-relro", fixture("hello-relro"), Some("elf-hello: ok 1\n")),
        ("manysyms", fixture("manysyms"), Some("elf-manysyms: 10\n")),
        ("usefoo-nopie", fixture("usefoo-nopie"), None),
    ] {
        let prog = dir.copy_file(&src, name);
        let before = len(&prog);
        let mut a = many_options(&loader, true);
        if name.starts_with("usefoo") {
            a.push("--replace-needed".into());
            a.push("libelffoo.so.1".into());
            a.push("libelfalt.so.1".into());
            let pos = a.iter().position(|s| s == "--set-rpath").unwrap() + 1;
            a[pos] = format!("{}:{}", a[pos], fixture("libfoo-alt").parent().unwrap().display());
        }
        a.push(prog.display().to_string());
        patchelf_ok(&a);
        let growth = len(&prog) - before;
        report.push(format!("{name}: +{growth}"));
        check_layout(&prog);
        assert_eq!(interpreter(&prog).as_deref(), Some(&*loader.to_string_lossy()), "{name}");
        match (name, expected) {
            ("ls", _) => {
                let run = run_program(&prog, &["-d", "/"]).success();
                assert_eq!(run.stdout, "/\n");
            }
            ("usefoo-nopie", _) => assert_runs(&prog, "elf-usefoo: foo 42\n"),
            (_, Some(e)) => assert_runs(&prog, e),
            _ => unreachable!(),
        }
        assert!(
            growth <= PAGE,
            "{name}: one call grew the file by {growth} bytes (more than a page): {report:?}"
        );
    }
    println!("growth: {report:?}");
}

#[test]
fn growth_of_a_library_edit_is_at_most_one_page() {
    let dir = TestDir::new("growth_library");
    let loader = long_loader(&dir);
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let lib = dir.copy_fixture("libfoo", "lib/libelffoo.so.1");
    let before = len(&lib);
    let mut a = many_options(&loader, false);
    a.push(lib.display().to_string());
    patchelf_ok(&a);
    let growth = len(&lib) - before;
    check_layout(&lib);
    assert!(growth <= PAGE, "library grew by {growth}");
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}

#[test]
fn growth_32bit_is_at_most_one_page() {
    let Some(src) = optional_fixture("hello32") else { return };
    let dir = TestDir::new("growth_32");
    let prog = dir.copy_file(&src, "prog");
    let deep = dir.join("a/much/longer/interpreter/path/than/before/lib");
    fs::create_dir_all(&deep).unwrap();
    let loader = deep.join("ld-linux.so.2");
    fs::copy("/lib/ld-linux.so.2", &loader).unwrap();
    let before = len(&prog);
    patchelf_ok(args(
        &[
            "--set-interpreter",
            &loader.display().to_string(),
            "--set-rpath",
            "/some/long/path/to/lib:/another/long/path/to/lib32",
            "--add-needed",
            "libm.so.6",
            "--add-debug-tag",
        ],
        &prog,
    ));
    let growth = len(&prog) - before;
    check_layout(&prog);
    assert_runs(&prog, "elf-hello: ok 1\n");
    assert!(growth <= PAGE, "32-bit program grew by {growth}");
}

#[test]
fn three_edits_on_ls_grow_at_most_4_kib() {
    // The benchmark's case: set-interpreter + set-rpath + add-needed in one call on /bin/ls.
    let dir = TestDir::new("growth_ls_three");
    let loader = long_loader(&dir);
    let prog = dir.copy_file(Path::new("/bin/ls"), "ls");
    let before = len(&prog);
    patchelf_ok(args(
        &[
            "--set-interpreter",
            &loader.display().to_string(),
            "--set-rpath",
            "/some/long/path/to/lib:/another/long/path/to/lib64",
            "--add-needed",
            "libm.so.6",
        ],
        &prog,
    ));
    let growth = len(&prog) - before;
    check_layout(&prog);
    let run = run_program(&prog, &["-d", "/"]).success();
    assert_eq!(run.stdout, "/\n");
    assert!(growth <= PAGE, "ls grew by {growth}");
}

// ---------------------------------------------------------------------------------------------------------------
// --print-* reads only the headers

/// Runs the tool with stdout/stderr captured to files and returns the run and its peak RSS in KiB (`wait4`).
fn run_with_peak_rss(args: &[&std::ffi::OsStr], scratch: &Path) -> (Run, u64) {
    let out_path = scratch.join("rss.stdout");
    let err_path = scratch.join("rss.stderr");
    let child = Command::new(tool())
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn the tool");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child (std's `Child` never waited on it), and both out-pointers are valid
    // for writes for the duration of the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    drop(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    let run = Run {
        code,
        signal,
        stdout: fs::read_to_string(out_path).unwrap(),
        stderr: fs::read_to_string(err_path).unwrap(),
    };
    (run, usage.ru_maxrss as u64)
}

#[test]
fn print_options_do_not_read_a_200_mb_file() {
    let dir = TestDir::new("print_big");
    let big = dir.copy_fixture("usefoo", "big");
    // 200 MiB of trailing data (sparse: costs no disk, but reading it costs 200 MiB of memory).
    let f = fs::OpenOptions::new().append(true).open(&big).unwrap();
    f.set_len(len(&big) + 200 * 1024 * 1024).unwrap();
    drop(f);
    let lib = fixture("libfoo").parent().unwrap().display().to_string();
    let cases: [(&str, String); 6] = [
        ("--print-rpath", format!("{lib}\n")),
        ("--print-needed", "libelffoo.so.1\nlibc.so.6\n".into()),
        ("--print-interpreter", format!("{LD64}\n")),
        ("--print-soname", String::new()),
        ("--print-execstack", "execstack: -\n".into()),
        ("--print-os-abi", "System V\n".into()),
    ];
    for (opt, expected) in cases {
        let (run, rss_kib) = run_with_peak_rss(&[opt.as_ref(), big.as_os_str()], dir.path());
        assert!(run.ok(), "{opt}: {run:#?}");
        assert_eq!(run.stdout, expected, "{opt}");
        println!("{opt}: peak RSS {rss_kib} KiB");
        assert!(
            rss_kib < 32 * 1024,
            "{opt} on a 200 MiB file peaked at {rss_kib} KiB: it read the whole file"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// No section headers

/// Removes the section header table the way `sstrip` does: zero `e_shoff`, `e_shnum`, `e_shstrndx` and cut the
/// table off the end of the file. Handles ELF32/ELF64 little-endian.
fn strip_section_headers(path: &Path) {
    let mut b = fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF");
    assert_eq!(b[5], 1, "little-endian only");
    let (shoff, shentsize, shnum, off_at, num_at) = if b[4] == 2 {
        let shoff = u64::from_le_bytes(b[0x28..0x30].try_into().unwrap());
        let ent = u16::from_le_bytes([b[0x3a], b[0x3b]]) as u64;
        let num = u16::from_le_bytes([b[0x3c], b[0x3d]]) as u64;
        (shoff, ent, num, 0x28..0x30, 0x3c)
    } else {
        let shoff = u32::from_le_bytes(b[0x20..0x24].try_into().unwrap()) as u64;
        let ent = u16::from_le_bytes([b[0x2e], b[0x2f]]) as u64;
        let num = u16::from_le_bytes([b[0x30], b[0x31]]) as u64;
        (shoff, ent, num, 0x20..0x24, 0x30)
    };
    for i in off_at {
        b[i] = 0;
    }
    b[num_at..num_at + 4].fill(0); // e_shnum and e_shstrndx
    if shoff + shentsize * shnum == b.len() as u64 {
        b.truncate(shoff as usize);
    }
    fs::write(path, b).unwrap();
}

#[test]
fn works_on_files_without_section_headers() {
    let dir = TestDir::new("no_sections");
    for name in ["usefoo", "usefoo-nopie", "usefoo-rpath"] {
        let prog = dir.copy_fixture(name, name);
        strip_section_headers(&prog);
        assert!(readelf(&["-h"], &prog).contains("Number of section headers:         0"));
        assert_runs(&prog, "elf-usefoo: foo 42\n");
        let orig = fixture(name);
        for opt in
            ["--print-rpath", "--print-needed", "--print-interpreter", "--print-execstack", "--print-soname"]
        {
            let want = patchelf(args(&[opt], &orig)).success().stdout;
            let got = patchelf(args(&[opt], &prog));
            assert!(got.ok(), "{name} {opt} without section headers: {got:#?}");
            assert_eq!(got.stdout, want, "{name} {opt}");
        }
        // Edits: the result still runs and says what was set.
        let loader = long_loader(&dir);
        let alt = fixture("libfoo-alt").parent().unwrap().display().to_string();
        patchelf_ok(args(
            &[
                "--set-interpreter",
                &loader.display().to_string(),
                "--set-rpath",
                &format!("/a/longer/rpath/than/before/to/force/a/move:{alt}"),
                "--replace-needed",
                "libelffoo.so.1",
                "libelfalt.so.1",
                "--add-needed",
                "libm.so.6",
            ],
            &prog,
        ));
        assert_eq!(interpreter(&prog).as_deref(), Some(&*loader.to_string_lossy()));
        assert_eq!(dyn_values(&prog, "NEEDED"), vec!["libm.so.6", "libelfalt.so.1", "libc.so.6"], "{name}");
        check_layout(&prog);
        assert_runs(&prog, "elf-usefoo: foo 42\n");
        fs::remove_dir_all(dir.join("a")).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Trailing data

#[test]
fn trailing_data_survives_every_edit_in_place() {
    let dir = TestDir::new("trailing");
    let payload: Vec<u8> = (0..12_345u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let loader = long_loader(&dir);
    let alt = fixture("libfoo-alt").parent().unwrap().display().to_string();
    let map = dir.join("map");
    write(&map, "elf_foo_value elf_foo_value_renamed\n");
    let edits: Vec<Vec<String>> = vec![
        vec!["--set-interpreter".into(), loader.display().to_string()],
        vec![
            "--set-rpath".into(),
            format!(
                "/a/longer/rpath/that/does/not/fit/in/place:{alt}:{}",
                fixture("libfoo").parent().unwrap().display()
            ),
        ],
        vec!["--add-rpath".into(), "/another/added/directory/of/some/length".into()],
        vec!["--remove-rpath".into()],
        vec!["--add-needed".into(), "libm.so.6".into()],
        vec!["--remove-needed".into(), "libelffoo.so.1".into()],
        vec![
            "--replace-needed".into(),
            "libelffoo.so.1".into(),
            "libelfalt.so.1".into(),
            "--add-rpath".into(),
            alt.clone(),
        ],
        vec!["--no-default-lib".into()],
        vec!["--clear-symbol-version".into(), "printf".into()],
        vec!["--set-execstack".into()],
        vec!["--set-os-abi".into(), "linux".into()],
        vec!["--add-debug-tag".into()],
        vec!["--build-resolution-cache".into()],
    ];
    let mut failures = Vec::new();
    for name in ["usefoo", "usefoo-nopie", "usefoo-rpath"] {
        for (i, edit) in edits.iter().enumerate() {
            let prog = dir.copy_fixture(name, &format!("{name}-{i}"));
            let mut f = fs::OpenOptions::new().append(true).open(&prog).unwrap();
            f.write_all(&payload).unwrap();
            drop(f);
            let mut a = edit.clone();
            a.push(prog.display().to_string());
            patchelf_ok(&a);
            let bytes = fs::read(&prog).unwrap();
            if !bytes.ends_with(&payload) {
                failures.push(format!("{name} {edit:?}: payload not at the end any more"));
            }
            let runnable =
                !matches!(edit[0].as_str(), "--remove-rpath" | "--remove-needed" | "--no-default-lib");
            if runnable {
                let run = run_program(&prog, &[]);
                if !(run.ok() && run.stdout == "elf-usefoo: foo 42\n") {
                    failures.push(format!("{name} {edit:?}: does not run: {run:?}"));
                }
            }
            check_layout(&prog);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn trailing_data_of_a_library_survives() {
    let dir = TestDir::new("trailing_lib");
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    let lib = dir.copy_fixture("libfoo", "lib/libelffoo.so.1");
    let payload = b"APPENDED-PAYLOAD-".repeat(500);
    fs::OpenOptions::new().append(true).open(&lib).unwrap().write_all(&payload).unwrap();
    patchelf_ok(args(
        &[
            "--set-soname",
            "libelffoo-longer-soname.so.1",
            "--add-needed",
            "libm.so.6",
            "--set-rpath",
            "$ORIGIN/x/y/z",
        ],
        &lib,
    ));
    assert!(fs::read(&lib).unwrap().ends_with(&payload));
    let prog = dir.copy_fixture("usefoo", "prog");
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}

// ---------------------------------------------------------------------------------------------------------------
// RELRO, notes, properties, header order

fn notes_text(p: &Path) -> String {
    let (out, err) = readelf_with_stderr(&["-n"], p);
    assert!(err.is_empty(), "readelf -n complains about {}: {err}", p.display());
    // Drop the section/segment headers readelf prints between notes: only the notes themselves matter.
    out.lines()
        .filter(|l| {
            !l.starts_with("Displaying notes") && !l.trim_start().starts_with("Owner") && !l.trim().is_empty()
        })
        .map(|l| l.trim().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn relro_notes_and_properties_stay_consistent() {
    let dir = TestDir::new("relro_notes");
    let loader = long_loader(&dir);
    for name in ["hello-relro", "hello-nopie-relro", "hello", "hello-nopie"] {
        let orig = fixture(name);
        let prog = dir.copy_fixture(name, name);
        patchelf_ok(args(
            &[
                "--set-interpreter",
                &loader.display().to_string(),
                "--set-rpath",
                "/a/long/rpath/to/force/the/dynamic/strings/to/move",
                "--add-needed",
                "libm.so.6",
            ],
            &prog,
        ));
        check_layout(&prog);
        assert_runs(&prog, "elf-hello: ok 1\n");
        // Same notes, readable without warnings.
        assert_eq!(notes_text(&prog), notes_text(&orig), "{name}: notes changed");
        let before = segments(&orig);
        let after = segments(&prog);
        // PT_GNU_PROPERTY still points at the .note.gnu.property note, and a PT_NOTE covers the same bytes.
        let prop = after.iter().find(|s| s.kind == "GNU_PROPERTY").expect("GNU_PROPERTY kept");
        assert!(
            after.iter().any(|s| s.kind == "NOTE"
                && s.offset <= prop.offset
                && prop.offset + prop.filesz <= s.offset + s.filesz),
            "{name}: GNU_PROPERTY outside every PT_NOTE: {after:#?}"
        );
        let orig_prop = before.iter().find(|s| s.kind == "GNU_PROPERTY").unwrap();
        let (ob, nb) = (fs::read(&orig).unwrap(), fs::read(&prog).unwrap());
        assert_eq!(
            &nb[prop.offset as usize..(prop.offset + prop.filesz) as usize],
            &ob[orig_prop.offset as usize..(orig_prop.offset + orig_prop.filesz) as usize],
            "{name}: property note bytes"
        );
        // PT_GNU_RELRO: kept, same size or smaller, starting where it started inside a writable LOAD.
        if let Some(orig_relro) = before.iter().find(|s| s.kind == "GNU_RELRO") {
            let relro = after.iter().find(|s| s.kind == "GNU_RELRO").expect("GNU_RELRO kept");
            assert_eq!(relro.vaddr, orig_relro.vaddr, "{name}: RELRO start moved");
            assert!(relro.memsz <= orig_relro.memsz, "{name}: RELRO grew over data it did not protect");
            let load = after
                .iter()
                .find(|l| {
                    l.kind == "LOAD"
                        && l.vaddr <= relro.vaddr
                        && relro.vaddr + relro.memsz <= l.vaddr + l.memsz
                })
                .expect("RELRO inside one LOAD");
            assert!(load.flags.contains('W'), "{name}: RELRO in a read-only LOAD");
        }
    }
}

#[test]
fn program_headers_keep_the_elf_spec_order() {
    let dir = TestDir::new("spec_order");
    for name in ["hello", "hello-nopie", "usefoo", "libfoo"] {
        let p = dir.copy_fixture(name, name);
        patchelf_ok(args(
            &[
                "--set-rpath",
                "/a/long/rpath/to/force/the/dynamic/strings/to/move",
                "--add-needed",
                "libm.so.6",
            ],
            &p,
        ));
        check_spec_order(&p);
        check_layout(&p);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// No-ops

#[test]
fn no_op_edits_are_byte_identical() {
    let dir = TestDir::new("no_op");
    let lib = fixture("libfoo").parent().unwrap().display().to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("hello", vec!["--set-interpreter".into(), LD64.into()]),
        ("hello-nopie", vec!["--set-interpreter".into(), LD64.into()]),
        ("usefoo", vec!["--set-rpath".into(), lib.clone()]),
        ("usefoo-rpath", vec!["--force-rpath".into(), "--set-rpath".into(), lib.clone()]),
        ("hello", vec!["--remove-rpath".into()]),
        ("hello", vec!["--remove-needed".into(), "libabsent.so".into()]),
        ("usefoo", vec!["--replace-needed".into(), "libelffoo.so.1".into(), "libelffoo.so.1".into()]),
        ("libfoo", vec!["--set-soname".into(), "libelffoo.so.1".into()]),
        ("hello", vec!["--clear-execstack".into()]),
        ("hello-execstack", vec!["--set-execstack".into()]),
        ("hello", vec!["--set-os-abi".into(), "System V".into()]),
        ("hello", vec!["--add-debug-tag".into()]),
        ("hello", vec!["--clear-symbol-version".into(), "no_such_symbol".into()]),
        ("hello-relro", vec!["--set-interpreter".into(), LD64.into(), "--clear-execstack".into()]),
    ];
    let mut failures = Vec::new();
    for (i, (name, a)) in cases.iter().enumerate() {
        let p = dir.copy_fixture(name, &format!("{name}-{i}"));
        let before = fs::read(&p).unwrap();
        let mut full = a.clone();
        full.push(p.display().to_string());
        patchelf_ok(&full);
        if fs::read(&p).unwrap() != before {
            failures.push(format!("{name} {a:?}"));
        }
    }
    assert!(failures.is_empty(), "not byte-identical: {failures:#?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Atomic output

/// Runs the tool with `RLIMIT_FSIZE` set to `limit` bytes and SIGXFSZ ignored, so that any write past the limit
/// fails with EFBIG instead of killing the process.
fn run_with_file_size_limit(args: &[String], limit: u64) -> Run {
    let mut cmd = Command::new(tool());
    cmd.args(args).stdin(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe functions
    // (signal, setrlimit) on plain values; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("spawn the tool");
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_failed_write_leaves_the_input_untouched_and_no_temp_file() {
    let dir = TestDir::new("atomic_write");
    for name in ["hello", "usefoo-nopie", "manysyms"] {
        let prog = dir.copy_fixture(name, name);
        let before = fs::read(&prog).unwrap();
        let entries = dir.entries();
        // The limit is smaller than the file: the rewritten copy cannot be completed.
        let run = run_with_file_size_limit(
            &args(&["--set-rpath", "/a/long/rpath/to/force/the/dynamic/strings/to/move"], &prog),
            before.len() as u64 / 2,
        );
        assert_eq!(run.code, Some(1), "{name}: {run:#?}");
        let msg = error_message(&run);
        assert!(msg.contains(name), "{name}: the error names the file: {msg}");
        assert_unchanged(&prog, &before);
        assert_eq!(dir.entries(), entries, "{name}: a temp file was left behind");
        assert_runs(&prog, expected_output(name).unwrap());
    }
}

#[test]
fn a_malformed_file_in_a_multi_file_call_is_untouched() {
    let dir = TestDir::new("atomic_multi");
    let good = dir.copy_fixture("hello", "good");
    let bad = dir.copy_fixture("hello", "bad");
    // Cut the file inside its dynamic section: the headers parse, the dynamic segment lies past the end.
    let dyn_off = segments(&bad).iter().find(|s| s.kind == "DYNAMIC").unwrap().offset;
    let f = fs::OpenOptions::new().write(true).open(&bad).unwrap();
    f.set_len(dyn_off + 8).unwrap();
    drop(f);
    let bad_before = fs::read(&bad).unwrap();
    let entries = dir.entries();
    let run =
        patchelf(args(&["--set-rpath", "/opt/multi"], &good).into_iter().chain([bad.display().to_string()]));
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("bad"), "{run:#?}");
    assert!(!run.stderr.contains("panicked"), "{run:#?}");
    assert_unchanged(&bad, &bad_before);
    assert_eq!(dir.entries(), entries, "a temp file was left behind");
    // The good file was processed independently.
    assert_eq!(patchelf_ok(["--print-rpath".as_ref(), good.as_os_str()]), "/opt/multi\n");
}

#[test]
fn output_into_a_missing_directory_fails_cleanly() {
    let dir = TestDir::new("atomic_output_dir");
    let prog = dir.copy_fixture("hello", "prog");
    let before = fs::read(&prog).unwrap();
    let out = dir.join("no/such/dir/out");
    let run = patchelf(args(&["--set-rpath", "/x", "--output", &out.display().to_string()], &prog));
    assert_eq!(run.code, Some(1), "{run:#?}");
    error_message(&run);
    assert_unchanged(&prog, &before);
    assert_eq!(dir.entries(), vec!["prog"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Minimal change

#[test]
fn replace_needed_with_a_suffix_does_not_grow_the_file() {
    let dir = TestDir::new("needed_replace_suffix");
    let prog = dir.copy_fixture("usefoo", "prog");
    let size = len(&prog);
    patchelf_ok([
        "--replace-needed".as_ref(),
        "libelffoo.so.1".as_ref(),
        "foo.so.1".as_ref(),
        prog.as_os_str(),
    ]);
    assert_eq!(patchelf_ok(["--print-needed".as_ref(), prog.as_os_str()]), "foo.so.1\nlibc.so.6\n");
    assert_eq!(verneed_files(&prog), vec!["foo.so.1", "libc.so.6"]);
    assert_eq!(len(&prog), size, "a suffix of the old name fits in place");
    check_layout(&prog);
    let libdir = dir.join("lib");
    fs::create_dir_all(&libdir).unwrap();
    fs::copy(fixture("libfoo"), libdir.join("foo.so.1")).unwrap();
    patchelf_ok(["--set-rpath".as_ref(), libdir.as_os_str(), prog.as_os_str()]);
    assert_runs(&prog, "elf-usefoo: foo 42\n");
}
