//! The command line itself: version, usage, argument files, several inputs, `--output`, `--debug`, error wording.

use crate::common::*;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;

const ALL_OPTIONS: &[&str] = &[
    "--set-interpreter",
    "--page-size",
    "--print-interpreter",
    "--print-os-abi",
    "--set-os-abi",
    "--print-soname",
    "--set-soname",
    "--set-rpath",
    "--add-rpath",
    "--remove-rpath",
    "--shrink-rpath",
    "--allowed-rpath-prefixes",
    "--print-rpath",
    "--force-rpath",
    "--add-needed",
    "--remove-needed",
    "--replace-needed",
    "--print-needed",
    "--no-default-lib",
    "--no-sort",
    "--clear-symbol-version",
    "--add-debug-tag",
    "--build-resolution-cache",
    "--print-execstack",
    "--clear-execstack",
    "--set-execstack",
    "--rename-dynamic-symbols",
    "--no-clobber-old-sections",
    "--output",
    "--debug",
    "--version",
];

#[test]
fn version_prints_a_patchelf_0_19_compatible_line() {
    let run = patchelf(["--version"]).success();
    assert!(run.stderr.is_empty(), "{run:#?}");
    let line = run.stdout.strip_suffix('\n').expect("newline-terminated");
    assert!(!line.contains('\n'), "one line: {line:?}");
    // Build systems (auditwheel, meson) parse `patchelf X.Y.Z`: the word and a version not older than 0.19.
    let version = line.strip_prefix("patchelf ").unwrap_or_else(|| panic!("`patchelf <version>`: {line:?}"));
    let nums: Vec<u32> = version.split('.').map(|n| n.parse().expect("numeric version")).collect();
    assert!(nums.len() >= 2 && (nums[0], nums[1]) >= (0, 19), "version {version} is older than 0.19");
}

#[test]
fn version_wins_over_other_options() {
    let run = patchelf(["--print-rpath", "--version", "/nonexistent/file"]).success();
    assert!(run.stdout.starts_with("patchelf "), "{run:#?}");
}

#[test]
fn help_goes_to_stderr_and_exits_0() {
    for flag in ["--help", "-h"] {
        let run = patchelf([flag]).success();
        assert!(run.stdout.is_empty(), "{flag}: usage belongs on stderr: {run:#?}");
        for opt in ALL_OPTIONS {
            assert!(run.stderr.contains(opt), "{flag}: usage lacks {opt}: {}", run.stderr);
        }
        assert!(run.stderr.contains("FILENAME"), "{}", run.stderr);
    }
}

#[test]
fn no_arguments_prints_usage_and_exits_1() {
    let run = patchelf(Vec::<&str>::new()).failure(1);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("--set-rpath") && run.stderr.contains("FILENAME"), "{}", run.stderr);
}

#[test]
fn missing_file_uses_patchelfs_wording() {
    let dir = TestDir::new("missing_file");
    let missing = dir.join("does-not-exist");
    let run = patchelf(["--print-rpath".as_ref(), missing.as_os_str()]).failure(1);
    assert_eq!(
        error_message(&run),
        format!("getting info about '{}': No such file or directory", missing.display())
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn unknown_option_is_taken_as_a_file_name() {
    // patchelf has no "unknown option" error: anything it does not know is an input file.
    let dir = TestDir::new("unknown_option");
    let run = patchelf(["--no-such-option".as_ref(), dir.path().as_os_str()]).failure(1);
    assert_eq!(error_message(&run), "getting info about '--no-such-option': No such file or directory");
}

#[test]
fn at_file_arguments_read_the_value_from_a_file() {
    let dir = TestDir::new("at_file");
    let prog = dir.copy_fixture("usefoo", "prog");
    let libdir = fixture("libfoo").parent().unwrap().to_owned();
    let arg = dir.join("rpath.txt");
    // The whole file is the value: no trimming of a trailing newline happens in patchelf, so write none.
    write(&arg, &format!("/opt/unused:{}", libdir.display()));
    patchelf_ok(["--set-rpath".into(), format!("@{}", arg.display()), prog.display().to_string()]);
    assert_eq!(
        patchelf_ok(["--print-rpath".as_ref(), prog.as_os_str()]),
        format!("/opt/unused:{}\n", libdir.display())
    );
    assert_runs(&prog, "elf-usefoo: foo 42\n");

    let interp = dir.join("interp.txt");
    write(&interp, "/lib64/ld-linux-x86-64.so.2");
    let before = fs::read(&prog).unwrap();
    patchelf_ok(["--set-interpreter".into(), format!("@{}", interp.display()), prog.display().to_string()]);
    assert_unchanged(&prog, &before);
}

#[test]
fn missing_at_file_is_an_error_and_leaves_the_input_alone() {
    let dir = TestDir::new("missing_at_file");
    let prog = dir.copy_fixture("hello", "prog");
    let before = fs::read(&prog).unwrap();
    let missing = dir.join("nope.txt");
    let run = patchelf(["--set-rpath".into(), format!("@{}", missing.display()), prog.display().to_string()])
        .failure(1);
    assert_eq!(
        error_message(&run),
        format!("getting info about '{}': No such file or directory", missing.display())
    );
    assert_unchanged(&prog, &before);
}

#[test]
fn several_files_are_each_processed() {
    let dir = TestDir::new("several_files");
    let a = dir.copy_fixture("hello", "a");
    let b = dir.copy_fixture("hello-nopie", "b");
    let c = dir.copy_fixture("usefoo", "c");
    patchelf_ok(["--set-rpath".as_ref(), "/opt/several".as_ref(), a.as_os_str(), b.as_os_str()]);
    let out = patchelf_ok(["--print-rpath".as_ref(), a.as_os_str(), b.as_os_str(), c.as_os_str()]);
    let libdir = fixture("libfoo").parent().unwrap().display().to_string();
    assert_eq!(out, format!("/opt/several\n/opt/several\n{libdir}\n"));
    assert_runs(&a, "elf-hello: ok 1\n");
    assert_runs(&b, "elf-hello: ok 1\n");
    let out = patchelf_ok(["--print-needed".as_ref(), a.as_os_str(), c.as_os_str()]);
    assert_eq!(out, "libc.so.6\nlibelffoo.so.1\nlibc.so.6\n");
}

#[test]
fn output_writes_a_new_file_and_keeps_the_input() {
    let dir = TestDir::new("output");
    let input = dir.copy_fixture("hello", "in");
    let before = fs::read(&input).unwrap();
    let out = dir.join("out");
    patchelf_ok([
        "--set-rpath".as_ref(),
        "/opt/out".as_ref(),
        "--output".as_ref(),
        out.as_os_str(),
        input.as_os_str(),
    ]);
    assert_unchanged(&input, &before);
    assert_eq!(patchelf_ok(["--print-rpath".as_ref(), out.as_os_str()]), "/opt/out\n");
    assert_runs(&out, "elf-hello: ok 1\n");
    // --output always writes, even when nothing changes.
    let copy = dir.join("copy");
    patchelf_ok(["--output".as_ref(), copy.as_os_str(), input.as_os_str()]);
    assert_unchanged(&copy, &before);
    assert_runs(&copy, "elf-hello: ok 1\n");
}

#[test]
fn output_with_several_inputs_is_an_error() {
    let dir = TestDir::new("output_several");
    let a = dir.copy_fixture("hello", "a");
    let out = dir.join("out");
    let run = patchelf(["--output".as_ref(), out.as_os_str(), a.as_os_str(), a.as_os_str()]).failure(1);
    assert_eq!(error_message(&run), "--output option only allowed with single input file");
    assert!(!out.exists());
}

#[test]
fn set_rpath_and_add_rpath_together_is_an_error() {
    let dir = TestDir::new("set_and_add_rpath");
    let a = dir.copy_fixture("hello", "a");
    let before = fs::read(&a).unwrap();
    let run = patchelf([
        "--set-rpath".as_ref(),
        "/a".as_ref(),
        "--add-rpath".as_ref(),
        "/b".as_ref(),
        a.as_os_str(),
    ])
    .failure(1);
    assert_eq!(error_message(&run), "--set-rpath option not allowed with --add-rpath");
    assert_unchanged(&a, &before);
}

#[test]
fn debug_traces_on_stderr_without_changing_stdout() {
    let dir = TestDir::new("debug");
    let a = dir.copy_fixture("hello", "a");
    let b = dir.copy_fixture("hello", "b");
    let run = patchelf(["--debug".as_ref(), "--set-rpath".as_ref(), "/opt/debug".as_ref(), a.as_os_str()])
        .success();
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(!run.stderr.is_empty(), "--debug should trace the edit on stderr");
    // PATCHELF_DEBUG does the same as --debug.
    let out = std::process::Command::new(tool())
        .args(["--set-rpath".as_ref(), "/opt/debug".as_ref(), b.as_os_str()])
        .env("PATCHELF_DEBUG", "1")
        .output()
        .unwrap();
    assert!(out.status.success() && !out.stderr.is_empty(), "{out:?}");
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "--debug must not change the result");
    assert_eq!(patchelf_ok(["--print-rpath".as_ref(), a.as_os_str()]), "/opt/debug\n");
    let run = patchelf(["--debug".as_ref(), "--print-rpath".as_ref(), a.as_os_str()]).success();
    assert_eq!(run.stdout, "/opt/debug\n");
}

#[test]
fn a_directory_is_not_an_elf_file() {
    let dir = TestDir::new("directory_input");
    let run = patchelf(["--print-rpath".as_ref(), dir.path().as_os_str()]).failure(1);
    assert_eq!(error_message(&run), format!("reading '{}': Is a directory", dir.path().display()));
}

#[test]
fn usage_lists_every_option_in_patchelfs_order_after_the_invoked_name() {
    let run = patchelf(["--help"]).success();
    let mut lines = run.stderr.lines();
    // patchelf names the program as invoked, path included.
    assert_eq!(lines.next(), Some(format!("syntax: {}", tool().display()).as_str()), "{}", run.stderr);
    let listed: Vec<&str> = lines
        .filter_map(|l| l.trim_start().strip_prefix("[--"))
        .map(|l| l.split([' ', ']']).next().unwrap())
        .collect();
    let want: Vec<&str> = ALL_OPTIONS.iter().map(|o| o.trim_start_matches("--")).collect();
    assert_eq!(listed, want);
}

#[test]
fn page_size_is_read_like_c_atoi() {
    // patchelf takes atoi(value) and refuses only what is not positive.
    use std::ffi::OsStr;
    let prog = fixture("hello");
    let with = |size: &str| {
        patchelf([OsStr::new("--page-size"), size.as_ref(), "--print-rpath".as_ref(), prog.as_os_str()])
    };
    // atoi works in wrapping int arithmetic: 2^32 + 4096 is 4096, 999999999999 is negative.
    for good in ["3000", "4096abc", " 65536", "+4096", "4294971392"] {
        with(good).success();
    }
    for bad in ["0", "-1", "abc", "0x1000", "", "999999999999"] {
        let run = with(bad).failure(1);
        assert_eq!(error_message(&run), "invalid argument to --page-size", "{bad:?}");
    }
}

#[test]
fn replace_needed_needs_two_names() {
    for args in [vec!["--replace-needed"], vec!["--replace-needed", "libold.so"]] {
        let run = patchelf(&args).failure(1);
        assert_eq!(error_message(&run), "missing argument(s)", "{args:?}");
    }
}

#[test]
fn relocatable_objects_are_refused_as_patchelf_refuses_them() {
    let dir = TestDir::new("relocatable");
    let obj = dir.join("obj.o");
    let status = std::process::Command::new(cc())
        .args(["-c", "-o"])
        .arg(&obj)
        .arg(fixture_sources().join("elf-hello.c"))
        .status()
        .expect("run the C compiler");
    assert!(status.success());
    let before = fs::read(&obj).unwrap();
    let out = dir.join("out");
    for args in [
        vec!["--print-os-abi"],
        vec!["--print-soname"],
        vec!["--print-execstack"],
        vec!["--print-rpath"],
        vec!["--set-os-abi", "linux"],
        vec!["--set-rpath", "/x"],
        vec!["--output", out.to_str().unwrap()],
    ] {
        let mut full: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        full.push(obj.as_os_str());
        let run = patchelf(&full).failure(1);
        assert_error(&run, &obj, "wrong ELF type");
        assert!(run.stdout.is_empty(), "{args:?}: {run:#?}");
        assert_unchanged(&obj, &before);
    }
    assert!(!out.exists());
}

#[test]
fn a_file_shorter_than_the_header_is_missing_it() {
    let dir = TestDir::new("short_header");
    let hello = fs::read(fixture("hello")).unwrap();
    for len in [4, 16, 40, 63] {
        let f = dir.join(format!("short{len}"));
        fs::write(&f, &hello[..len]).unwrap();
        let run = patchelf(["--print-rpath".as_ref(), f.as_os_str()]).failure(1);
        assert_error(&run, &f, "missing ELF header");
    }
    // Shorter than a 32-bit header, even a text file lacks the header; from there on it is not ELF.
    let text = "#!/bin/sh\n# a script long enough to be looked at for the ELF magic\n";
    for len in [10, 51, 52, text.len()] {
        let f = dir.join(format!("text{len}"));
        write(&f, &text[..len]);
        let run = patchelf(["--print-rpath".as_ref(), f.as_os_str()]).failure(1);
        let wording = if len < 52 { "missing ELF header" } else { "not an ELF executable" };
        assert_error(&run, &f, wording);
    }
}

#[test]
fn output_takes_an_at_file_and_follows_patchelfs_modes() {
    let dir = TestDir::new("output_modes");
    let input = dir.copy_fixture("hello", "in");
    fs::set_permissions(&input, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let name = dir.join("name.txt");
    let out = dir.join("from-at-file");
    write(&name, &out.display().to_string());
    patchelf_ok(["--output".into(), format!("@{}", name.display()), input.display().to_string()]);
    assert_runs(&out, "elf-hello: ok 1\n");
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(p).unwrap().permissions())
    };
    // A new file is created as patchelf's open(O_CREAT, 0777) creates it: the umask decides, not the input's mode.
    let umask = {
        let probe = dir.join("umask-probe");
        fs::OpenOptions::new().write(true).create_new(true).mode(0o777).open(&probe).unwrap();
        0o777 & !mode(&probe)
    };
    assert_eq!(mode(&out) & 0o777, 0o777 & !umask);
    // An existing output file is rewritten in place by patchelf, so it keeps its own mode.
    let existing = dir.join("existing");
    fs::write(&existing, b"old").unwrap();
    fs::set_permissions(&existing, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    patchelf_ok(["--output".as_ref(), existing.as_os_str(), input.as_os_str()]);
    assert_eq!(mode(&existing) & 0o777, 0o640);
    assert_eq!(fs::read(&existing).unwrap(), fs::read(&input).unwrap());
    // In place, the file keeps its mode.
    patchelf_ok(["--set-rpath".as_ref(), "/opt/x".as_ref(), input.as_os_str()]);
    assert_eq!(mode(&input) & 0o777, 0o750);
}

#[test]
fn output_onto_a_device_or_fifo_writes_into_it_and_through_a_symlink_to_its_target() {
    use std::os::unix::fs::FileTypeExt;
    let dir = TestDir::new("output_special");
    let input = dir.copy_fixture("hello", "in");
    let set = |out: &std::path::Path| {
        patchelf([
            "--set-rpath".as_ref(),
            "/x".as_ref(),
            "--output".as_ref(),
            out.as_os_str(),
            input.as_os_str(),
        ])
    };
    // A character device like /dev/null (made here, so a failure cannot break the machine's own): written
    // into, never replaced by a regular file.
    if test_support::is_root() {
        let null = dir.join("null");
        let c = std::ffi::CString::new(null.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; (1, 3) is the null device.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) }, 0);
        set(&null).success();
        assert!(fs::symlink_metadata(&null).unwrap().file_type().is_char_device(), "the device was replaced");
    } else {
        test_support::unmet("root, to make a device node");
    }
    // A FIFO gets the whole result, in order.
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    set(&fifo).success();
    let streamed = dir.join("streamed");
    fs::write(&streamed, reader.join().unwrap()).unwrap();
    fs::set_permissions(&streamed, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(patchelf_ok(["--print-rpath".as_ref(), streamed.as_os_str()]), "/x\n");
    assert_runs(&streamed, "elf-hello: ok 1\n");
    // A symlink is followed (a dangling one creates its target, as patchelf's open(O_CREAT) does); the link stays.
    let link = dir.join("link");
    std::os::unix::fs::symlink("target", &link).unwrap();
    set(&link).success();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(patchelf_ok(["--print-rpath".as_ref(), dir.join("target").as_os_str()]), "/x\n");
    // A directory is refused with the path and the reason; nothing is left behind in it.
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    let run = set(&sub).failure(1);
    assert!(run.stderr.contains("sub") && run.stderr.contains("Is a directory"), "{run:#?}");
    assert!(fs::read_dir(&sub).unwrap().next().is_none());
}

#[test]
fn a_symlink_named_patchelf_works_and_names_itself_patchelf() {
    let dir = TestDir::new("symlink_patchelf");
    let link = dir.join("patchelf");
    std::os::unix::fs::symlink(tool(), &link).unwrap();
    let prog = dir.copy_fixture("hello", "prog");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(&link).args(args).output().expect("run through the symlink");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&["--set-rpath".as_ref(), "/via/link".as_ref(), prog.as_os_str()]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(run(&["--print-rpath".as_ref(), prog.as_os_str()]).1, "/via/link\n");
    assert_runs(&prog, "elf-hello: ok 1\n");
    let missing = dir.join("missing");
    let (code, out, err) = run(&["--print-rpath".as_ref(), missing.as_os_str()]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty());
    assert_eq!(
        err,
        format!("patchelf: getting info about '{}': No such file or directory\n", missing.display())
    );
}

#[test]
fn a_text_file_is_rejected_with_a_one_line_error() {
    let dir = TestDir::new("not_elf");
    let f = dir.join("script.sh");
    write(&f, "#!/bin/sh\necho hi\n");
    let before = fs::read(&f).unwrap();
    for args in [vec!["--print-rpath"], vec!["--set-rpath", "/x"]] {
        let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        full.push(f.display().to_string());
        let run = patchelf(&full).failure(1);
        let msg = error_message(&run);
        assert!(msg.to_lowercase().contains("elf"), "should say it is not an ELF file: {msg}");
        assert_unchanged(&f, &before);
    }
}
