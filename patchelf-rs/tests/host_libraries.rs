//! Every ELF file of the host's multiarch library directories, patched with a run path longer than its old one,
//! still loads and behaves at run time. The fixture tests run patched *executables*, which have `PT_PHDR`; shared
//! libraries usually do not, and the loader then finds their program headers through whichever `PT_LOAD` maps the
//! table's file offset, so a moved table can be right in the file and wrong in memory. This test asks the loader.
//!
//! For each file (64-bit: `/usr/lib/x86_64-linux-gnu`; 32-bit: `/usr/lib/i386-linux-gnu` and `/usr/lib32`, all
//! recursively): the program headers `dl_iterate_phdr` reports after `dlopen` (after `LD_PRELOAD` start-up for
//! executables) must be exactly the patched file's table, and the same as the original's up to one more `PT_LOAD`
//! and the addresses of what moved; `ldd` must give the same result; `readelf` must warn about nothing new. Then a
//! C++ program throws exceptions inside the patched libstdc++ (and runs on the patched libgcc_s, libm and libc)
//! and must catch them. A file the loader cannot load unpatched (a plug-in needing its host's symbols) must fail
//! the same way patched. Runs in a minute or two; needs cc, c++, ldd, readelf, timeout and, for the 32-bit part,
//! gcc-multilib/g++-multilib and some `lib32*` packages (`.ci/run` installs them).

mod common;

use common::*;
use patchelf_rs::Elf;
use patchelf_rs::raw::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One word size and its directories.
struct Target {
    name: &'static str,
    is64: bool,
    machine: u16,
    cflags: &'static [&'static str],
    dirs: &'static [&'static str],
}

const X86_64: Target = Target {
    name: "x86_64",
    is64: true,
    machine: EM_X86_64,
    cflags: &[],
    dirs: &["/usr/lib/x86_64-linux-gnu"],
};
const I386: Target = Target {
    name: "i386",
    is64: false,
    machine: EM_386,
    cflags: &["-m32"],
    dirs: &["/usr/lib/i386-linux-gnu", "/usr/lib32"],
};

/// A run path no host directory has, longer than any run path a host library carries.
const LONG_DIR: &str =
    "/nonexistent/patchelf-rs/a/run/path/longer/than/the/old/one/to/force/a/new/string/table";
const DF_1_PIE: u64 = 0x0800_0000;

#[test]
fn host_libraries_still_load_after_patching_x86_64() {
    check_target(&X86_64);
}

#[test]
fn host_libraries_still_load_after_patching_i386() {
    check_target(&I386);
}

/// The probe programs of one target.
struct Probes {
    dlopen: PathBuf,
    preload: PathBuf,
    cxx: PathBuf,
}

fn check_target(t: &Target) {
    for tool in ["cc", "c++", "ldd", "readelf", "timeout"] {
        if !test_support::have_tool(tool) {
            return test_support::unmet(format!("{tool} (packages gcc, g++, libc-bin, binutils, coreutils)"));
        }
    }
    let dir = TestDir::new(&format!("host_libraries_{}", t.name));
    let probes = match build_probes(t, dir.path()) {
        Ok(p) => p,
        Err(e) if t.is64 => panic!("building the probes: {e}"),
        Err(e) => {
            return test_support::unmet(format!(
                "a 32-bit C and C++ toolchain (gcc-multilib, g++-multilib): {e}"
            ));
        }
    };
    let files = host_files(t);
    if files.is_empty() {
        if t.is64 {
            panic!("no {} ELF files in {:?}", t.name, t.dirs);
        }
        return test_support::unmet(format!(
            "{} libraries in {:?} (packages lib32stdc++6, lib32z1, ...)",
            t.name, t.dirs
        ));
    }
    // The libraries the C++ program runs on: their patched copies are kept for its run.
    let cxx_libs = ldd_resolved(&probes.cxx).unwrap_or_else(|e| panic!("ldd on the C++ probe: {e}"));
    let cxx_dir = dir.join("cxx-libs");
    fs::create_dir_all(&cxx_dir).unwrap();

    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let counts = Mutex::new(BTreeMap::<&'static str, usize>::new());
    std::thread::scope(|s| {
        for worker in 0..2 {
            let (files, probes, dir, cxx_libs, cxx_dir) = (&files, &probes, &dir, &cxx_libs, &cxx_dir);
            let (next, failures, counts) = (&next, &failures, &counts);
            s.spawn(move || {
                let work = dir.join(format!("w{worker}"));
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let _ = fs::remove_dir_all(&work);
                    fs::create_dir_all(&work).unwrap();
                    let checked = patch_copy(file, &work).and_then(|patched| match patched {
                        None => Ok("static"),
                        Some((patched, exec)) => {
                            if let Some(soname) = cxx_libs.iter().find(|(_, p)| *p == file).map(|(s, _)| s) {
                                fs::copy(&patched, cxx_dir.join(soname)).unwrap();
                            }
                            check_patched(file, &patched, exec, probes, &work)
                        }
                    });
                    match checked {
                        Ok(outcome) => *counts.lock().unwrap().entry(outcome).or_default() += 1,
                        Err(e) => failures.lock().unwrap().push(format!("{}: {e}", file.display())),
                    }
                }
                let _ = fs::remove_dir_all(&work);
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    let counts = counts.into_inner().unwrap();
    println!("{}: {} files: {counts:?}", t.name, files.len());
    if counts.get("loaded").copied().unwrap_or(0) == 0 {
        failures.push(format!("no library could be loaded at all: {counts:?}"));
    }
    if let Err(e) = cxx_exceptions(&probes.cxx, &cxx_libs, &cxx_dir) {
        failures.insert(0, format!("C++ exceptions across the patched libstdc++: {e}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} {} files misbehave after patching (first 40):\n{}",
        failures.len(),
        files.len(),
        t.name,
        failures[..failures.len().min(40)].join("\n")
    );
}

/// Runs the C++ probe on the patched copies of every library it uses: exceptions thrown inside libstdc++ must be
/// caught, and the libstdc++ that threw them must be the patched one.
fn cxx_exceptions(program: &Path, libs: &BTreeMap<String, PathBuf>, dir: &Path) -> Result<(), String> {
    let missing: Vec<&String> = libs.keys().filter(|s| !dir.join(s).exists()).collect();
    if !missing.is_empty() {
        return Err(format!("its libraries {missing:?} were not among the patched files"));
    }
    if !libs.keys().any(|s| s.starts_with("libstdc++")) {
        return Err(format!("it does not use libstdc++: {libs:?}"));
    }
    let out = Command::new(program).env("LD_LIBRARY_PATH", dir).stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = format!("caught 3\nlibstdc++ {}/libstdc++.so.6\n", dir.display());
    if !out.status.success() || stdout != want {
        return Err(format!(
            "{:?}, stdout {stdout:?}, stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn build_probes(t: &Target, dir: &Path) -> Result<Probes, String> {
    let src = fixture_sources();
    let build = |compiler: &str, out: &str, args: &[&str]| -> Result<PathBuf, String> {
        let path = dir.join(out);
        let o = Command::new(compiler)
            .current_dir(&src)
            .args(t.cflags)
            .args(["-O1", "-o"])
            .arg(&path)
            .args(args)
            .output()
            .map_err(|e| format!("{compiler}: {e}"))?;
        if !o.status.success() {
            return Err(format!("{compiler} {args:?}: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Ok(path)
    };
    Ok(Probes {
        dlopen: build("cc", "probe", &["elf-phdr-probe.c", "-ldl"])?,
        preload: build(
            "cc",
            "probe-preload.so",
            &["-shared", "-fPIC", "-DPROBE_PRELOAD", "elf-phdr-probe.c"],
        )?,
        cxx: build("c++", "cxx-throw", &["elf-cxx-throw.cc", "-ldl"])?,
    })
}

/// The ELF shared objects and executables of the target's directories (recursively, symlinks not followed, each
/// file once), by canonical path.
fn host_files(t: &Target) -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = t.dirs.iter().map(PathBuf::from).filter(|d| d.is_dir()).collect();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file()
                && let Ok(meta) = entry.metadata()
                && seen.insert((meta.dev(), meta.ino()))
                && is_target_elf(&path, t)
            {
                out.push(fs::canonicalize(&path).unwrap_or(path));
            }
        }
    }
    out.sort();
    out
}

fn is_target_elf(path: &Path, t: &Target) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    if fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_err() || &head[..4] != b"\x7fELF" {
        return false;
    }
    let e_type = u16::from_le_bytes([head[16], head[17]]);
    let machine = u16::from_le_bytes([head[18], head[19]]);
    head[4] == if t.is64 { 2 } else { 1 } && machine == t.machine && (e_type == ET_DYN || e_type == ET_EXEC)
}

/// Patches a copy of `file` in `work` with a longer run path: the copy and whether it is an executable, or `None`
/// for a static file (nothing to patch).
fn patch_copy(file: &Path, work: &Path) -> Result<Option<(PathBuf, bool)>, String> {
    let data = fs::read(file).map_err(|e| format!("read: {e}"))?;
    let elf = Elf::parse(&data).map_err(|e| format!("patchelf-rs cannot parse the original: {e}"))?;
    if elf.dynamic.is_none() {
        return Ok(None);
    }
    let exec = elf.ehdr.e_type == ET_EXEC || elf.dyn_val(DT_FLAGS_1).is_some_and(|f| f & DF_1_PIE != 0);
    let has_rpath = elf.dyn_val(DT_RPATH).is_some();
    let has_runpath = elf.dyn_val(DT_RUNPATH).is_some();
    drop(elf);

    // The new run path: a long directory that does not exist, then the old one as seen from the original's place.
    let origin = file.parent().unwrap().display().to_string();
    let old = patchelf_ok(["--print-rpath".as_ref(), file.as_os_str()]);
    let old = old.trim_end_matches('\n');
    let mut rpath = LONG_DIR.to_owned();
    if !old.is_empty() {
        rpath = format!("{rpath}:{}", old.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin));
    }
    let patched = work.join(file.file_name().unwrap());
    fs::copy(file, &patched).map_err(|e| format!("copy: {e}"))?;
    fs::set_permissions(&patched, fs::Permissions::from_mode(0o755)).unwrap();
    let mut args: Vec<&std::ffi::OsStr> = vec!["--set-rpath".as_ref(), rpath.as_ref()];
    if has_rpath && !has_runpath {
        args.push("--force-rpath".as_ref());
    }
    args.push(patched.as_os_str());
    let run = patchelf(&args);
    if !run.ok() {
        return Err(format!("--set-rpath failed: {}", run.stderr.trim_end()));
    }
    let now = patchelf_ok(["--print-rpath".as_ref(), patched.as_os_str()]);
    if now.trim_end_matches('\n') != rpath {
        return Err(format!("run path reads {now:?} after setting {rpath:?}"));
    }
    Ok(Some((patched, exec)))
}

/// Compares the patched copy with the original: `readelf`'s warnings, `ldd`, and the loader's view of the program
/// headers. Returns what kind of file it was; `Err` is a misbehaviour.
fn check_patched(
    file: &Path,
    patched: &Path,
    exec: bool,
    probes: &Probes,
    work: &Path,
) -> Result<&'static str, String> {
    // readelf: no warning the original did not have.
    let (_, before) = readelf_with_stderr(&["-lSd"], file);
    let (_, after) = readelf_with_stderr(&["-lSd"], patched);
    let before: BTreeSet<&str> = before.lines().collect();
    let new_warnings: Vec<&str> = after.lines().filter(|l| !before.contains(l)).collect();
    if !new_warnings.is_empty() {
        return Err(format!("readelf warns {new_warnings:?}"));
    }

    // ldd resolves the same libraries.
    let (ldd_before, ldd_after) = (ldd(file), ldd(patched));
    if ldd_before != ldd_after {
        return Err(format!("ldd differs:\n  before {ldd_before:?}\n  after  {ldd_after:?}"));
    }

    // The loader's view.
    let (before, after) = if exec {
        // A set-id original would ignore the preload and run its main: run an unprivileged copy instead.
        let original = if fs::metadata(file).map(|m| m.mode() & 0o6000 != 0).unwrap_or(false) {
            let copy = work.join("original");
            fs::copy(file, &copy).unwrap();
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
            copy
        } else {
            file.to_path_buf()
        };
        (probe_program(&original, probes), probe_program(patched, probes))
    } else {
        let mut before = probe_library(file, probes);
        if before.code == Some(3) {
            // Already loaded by the probe itself under another name (libc, libdl): compare with a second copy.
            let copy = work.join("original").join(file.file_name().unwrap());
            fs::create_dir_all(copy.parent().unwrap()).unwrap();
            fs::copy(file, &copy).unwrap();
            before = probe_library(&copy, probes);
        }
        (before, probe_library(patched, probes))
    };
    if before.code != after.code {
        return Err(format!(
            "loads differently: exit {:?} before, {:?} after\n  before: {}\n  after: {}",
            before.code,
            after.code,
            before.output.trim_end(),
            after.output.trim_end()
        ));
    }
    if before.code != Some(0) {
        return Ok("not loadable unpatched either");
    }
    let data = fs::read(patched).unwrap();
    let elf = Elf::parse(&data).map_err(|e| format!("patchelf-rs cannot parse its output: {e}"))?;
    let table: Vec<Ph> = elf
        .phdrs
        .iter()
        .map(|p| Ph { kind: p.p_type, flags: p.p_flags, vaddr: p.p_vaddr, memsz: p.p_memsz })
        .collect();
    if after.headers != table {
        return Err(format!(
            "the loader reports other program headers than the file has:\n  loader {:x?}\n  file   {table:x?}",
            after.headers
        ));
    }
    compare_views(&before.headers, &after.headers)?;
    Ok(if exec { "started" } else { "loaded" })
}

/// One program header as `dl_iterate_phdr` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ph {
    kind: u32,
    flags: u32,
    vaddr: u64,
    memsz: u64,
}

#[derive(Debug)]
struct View {
    code: Option<i32>,
    headers: Vec<Ph>,
    /// What the probe printed, for failure messages.
    output: String,
}

/// The same headers before and after, up to one more `PT_LOAD` (for an executable, the pages opened below its
/// first one) and the addresses and sizes of what the rewrite may move or grow (`PT_PHDR`, `PT_DYNAMIC`,
/// `PT_INTERP`, notes); `PT_NULL` slots may be used up.
fn compare_views(before: &[Ph], after: &[Ph]) -> Result<(), String> {
    const MOVABLE: [u32; 5] = [PT_PHDR, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_GNU_PROPERTY];
    let fixed = |v: &[Ph]| -> Vec<Ph> {
        v.iter()
            .filter(|p| !MOVABLE.contains(&p.kind) && p.kind != PT_LOAD && p.kind != PT_NULL)
            .copied()
            .collect()
    };
    if fixed(before) != fixed(after) {
        return Err(format!("headers changed:\n  before {:x?}\n  after  {:x?}", fixed(before), fixed(after)));
    }
    let kinds = |v: &[Ph], k: u32| v.iter().filter(|p| p.kind == k).count();
    for k in MOVABLE {
        if kinds(before, k) != kinds(after, k) {
            return Err(format!("{} headers of type {k:#x} became {}", kinds(before, k), kinds(after, k)));
        }
    }
    let loads = |v: &[Ph]| -> Vec<Ph> { v.iter().filter(|p| p.kind == PT_LOAD).copied().collect() };
    let (a, b) = (loads(before), loads(after));
    // Each LOAD stays, except that an executable's first one may keep only its part after the program headers,
    // the headers having moved down with the new bytes into the one new LOAD.
    let kept = |l: &Ph| {
        b.contains(l)
            || (Some(l) == a.first()
                && b.iter().any(|m| {
                    m.flags == l.flags && m.vaddr > l.vaddr && m.vaddr + m.memsz == l.vaddr + l.memsz
                }))
    };
    if !a.iter().all(kept) || b.len() > a.len() + 1 {
        return Err(format!("LOADs changed beyond one new one:\n  before {a:x?}\n  after  {b:x?}"));
    }
    Ok(())
}

fn probe(mut cmd: Command) -> View {
    let out = cmd
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run the probe");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut headers = Vec::new();
    for line in output.lines().take_while(|l| *l != "end") {
        let f: Vec<u64> = line.split(' ').filter_map(|w| u64::from_str_radix(w, 16).ok()).collect();
        if let [kind, flags, vaddr, memsz] = f[..] {
            headers.push(Ph { kind: kind as u32, flags: flags as u32, vaddr, memsz });
        }
    }
    View { code: out.status.code(), headers, output }
}

/// A timeout in front of a probe: a library constructor may wait for something that never comes.
fn timed() -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "5", "60"]);
    c
}

fn probe_library(file: &Path, probes: &Probes) -> View {
    let mut c = timed();
    c.arg(&probes.dlopen).arg(file);
    probe(c)
}

fn probe_program(file: &Path, probes: &Probes) -> View {
    let mut c = timed();
    // Through env, so that the preload reaches the program and not timeout itself.
    c.arg("env").arg(format!("LD_PRELOAD={}", probes.preload.display())).arg(file);
    probe(c)
}

/// `ldd`'s exit status and its lines without load addresses and without the file's own name.
fn ldd(file: &Path) -> (Option<i32>, Vec<String>) {
    let out =
        Command::new("ldd").arg(file).env_remove("LD_LIBRARY_PATH").stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let name = file.display().to_string();
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.split(" (0x").next().unwrap_or(l).trim().replace(&name, "FILE"))
        .filter(|l| !l.starts_with("linux-vdso") && !l.starts_with("linux-gate"))
        .collect();
    lines.sort();
    (out.status.code(), lines)
}

/// The sonames `ldd` resolves for a program, with the canonical paths of the files they resolve to.
fn ldd_resolved(program: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let (code, lines) = ldd(program);
    if code != Some(0) {
        return Err(format!("exit {code:?}: {lines:?}"));
    }
    let mut out = BTreeMap::new();
    for l in lines {
        if let Some((soname, path)) = l.split_once(" => ") {
            let path = fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))?;
            out.insert(soname.to_owned(), path);
        }
    }
    Ok(out)
}
