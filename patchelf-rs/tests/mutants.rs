//! The fuzz run: mutants of real ELF files (the fixtures and host executables and libraries, at least 20 seeds)
//! go through every `--print-*` option and through a long `--set-rpath --set-interpreter` edit, as the binary runs
//! them. No run may die by a signal, panic or hang; a failed run leaves its input as it was and says why in one
//! line; a print never changes its input; and an edit that succeeds leaves a file that patchelf-rs reads back (with
//! the new values) and in which `readelf` finds nothing new to warn about.
//!
//! A mutant is a seed plus a recipe of one to three mutations (a header, program header, section header or
//! dynamic entry field set to a chosen value, a few bytes overwritten, a truncation), drawn from a fixed seed, so
//! every run tries the same mutants and any of them can be rebuilt from its name. `REGRESSIONS` holds the recipes
//! of mutants that found bugs. `FHSKIT_MUTANTS=N` sets the number per seed (default 150).

mod common;

use common::*;
use patchelf_rs::Elf;
use patchelf_rs::raw::Fmt;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use test_support::rng::Rng;

const RPATH: &str = "/a/run/path/much/longer/than/any/seed/has/lib:/and/another/long/directory/lib64";
const INTERP: &str = "/a/much/longer/interpreter/path/than/any/seed/has/lib64/ld-linux-x86-64.so.2";
const PRINTS: [&str; 6] = [
    "--print-interpreter",
    "--print-rpath",
    "--print-needed",
    "--print-soname",
    "--print-execstack",
    "--print-os-abi",
];

/// Mutants that found bugs: (seed, recipe).
const REGRESSIONS: &[(&str, &str)] = &[
    // The interpreter at the ELF header: a shorter one was written over the header.
    ("hello", "ph.INTERP.offset=0"),
    // The string table inside the program headers: the edit wrote over them.
    ("usefoo", "dyn.STRTAB.val=phdr"),
    // A LOAD mapping more of the file than its memory size: the new segment could be mapped over.
    ("hello", "ph.LOAD.filesz=+0x3000"),
    // A LOAD or note segment far outside the file: address arithmetic overflowed (a panic in --print-needed,
    // and when moving an executable's headers down).
    ("hello-nopie", "ph.LOAD.offset=0xfffffffffffffff8"),
    ("hello-nopie", "ph.NOTE.offset=0xfffffffffffffff8"),
    ("hello-nopie-relro", "ph3.vaddr=-1,ph1.memsz=phdr,dyn1.tag=phoff"),
    // e_shnum 0 with e_shoff set (how extended numbering starts): new bytes went in front of the table e_shoff
    // points at, which then read as garbage.
    ("hello32", "eh.shnum=0"),
    ("libfoo", "eh.shnum=0"),
    // A section larger than the file: carried into the output, where it reads as different damage.
    ("usefoo", "ph0.memsz=len-1,sh6.size=len+8,ph6.flags=+0x3000"),
    // Warnings printed before the error of a refused edit: the error was not one line.
    ("usefoo-rpath", "ph1.offset=ehdr,sh4.name=0,ph0.offset=len+8"),
    // .dynamic without DT_NULL: a resolution-cache run must not rewrite it, an edit must refuse it.
    ("libfoo", "dyn.all.tag=0x7fffffff"),
];

#[test]
fn mutants_of_real_files_never_break_the_tool_or_its_output() {
    for tool in ["readelf", "timeout"] {
        if !test_support::have_tool(tool) {
            return test_support::unmet(format!("{tool} (packages binutils, coreutils)"));
        }
    }
    let seeds = seeds();
    assert!(seeds.len() >= 20, "only {} seed files: {seeds:?}", seeds.len());
    let per_seed: usize = std::env::var("FHSKIT_MUTANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    let mut mutants: Vec<(String, PathBuf, String)> = Vec::new();
    for (name, path) in &seeds {
        let data = fs::read(path).unwrap();
        let mut rng = Rng::new(
            0x9e37_79b9_7f4a_7c15 ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31) + u64::from(b)),
        );
        for _ in 0..per_seed {
            if let Some(recipe) = random_recipe(&data, &mut rng) {
                mutants.push((name.clone(), path.clone(), recipe));
            }
        }
    }
    for (seed, recipe) in REGRESSIONS {
        let path = seeds.iter().find(|(n, _)| n == seed).map(|(_, p)| p.clone()).expect("regression seed");
        assert!(
            apply(&fs::read(&path).unwrap(), recipe).is_some(),
            "regression {seed} [{recipe}] does not apply"
        );
        mutants.push((seed.to_string(), path, recipe.to_string()));
    }
    let dir = TestDir::new("mutants");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let edited = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..2 {
            let (mutants, next, failures, edited, dir) = (&mutants, &next, &failures, &edited, &dir);
            s.spawn(move || {
                let work = dir.join(format!("w{w}"));
                fs::create_dir_all(&work).unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((seed, path, recipe)) = mutants.get(i) else { break };
                    let data = fs::read(path).unwrap();
                    let Some(mutant) = apply(&data, recipe) else { continue };
                    match check(&mutant, &work) {
                        Ok(true) => {
                            edited.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            let kept = keep(seed, recipe, &mutant);
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{seed} [{recipe}]: {e} (kept at {})", kept.display()));
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "{} mutants of {} seeds, {} edited successfully",
        mutants.len(),
        seeds.len(),
        edited.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{} failing mutants (first 30):\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}

/// Keeps a failing mutant for a closer look, under the target directory's scratch space.
fn keep(seed: &str, recipe: &str, mutant: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("patchelf-rs/mutant-failures");
    fs::create_dir_all(&dir).unwrap();
    let name: String = format!("{seed}_{recipe}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '=' { c } else { '_' })
        .collect();
    let path = dir.join(name);
    fs::write(&path, mutant).unwrap();
    path
}

/// Seed files: the fixtures that build here, and host executables and libraries.
fn seeds() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for name in ALL_FIXTURES.iter().chain(&["hello-aarch64", "hello-s390x", "libfoo-s390x", "libfoo-s390"]) {
        if let Ok(p) = try_fixture(name) {
            out.push((name.to_string(), p));
        }
    }
    for host in [
        "/bin/ls",
        "/bin/true",
        "/bin/bash",
        "/usr/bin/env",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/lib32/libc.so.6",
    ] {
        let p = Path::new(host);
        if let Ok(real) = fs::canonicalize(p) {
            out.push((host.to_string(), real));
        }
    }
    out
}

const PH_FIELDS: [&str; 7] = ["type", "flags", "offset", "vaddr", "filesz", "memsz", "align"];
const SH_FIELDS: [&str; 8] = ["name", "type", "flags", "addr", "offset", "size", "link", "entsize"];
const EH_FIELDS: [&str; 9] =
    ["type", "phoff", "shoff", "phentsize", "phnum", "shentsize", "shnum", "shstrndx", "machine"];
const VALUES: [&str; 14] = [
    "0",
    "1",
    "-1",
    "len",
    "len-1",
    "len+8",
    "phoff",
    "phdr",
    "ehdr",
    "+0x1000",
    "+0x3000",
    "*2",
    "0x7fffffff",
    "rand",
];

/// A recipe of one to three mutations for `data`, or `None` when it has no program headers to aim at.
fn random_recipe(data: &[u8], rng: &mut Rng) -> Option<String> {
    let elf = Elf::parse(data).ok()?;
    let nph = elf.phdrs.len();
    let nsh = usize::from(elf.ehdr.e_shnum);
    let ndyn = elf.dynamic.as_ref().map_or(0, |d| d.entries.len());
    let mut parts = Vec::new();
    for _ in 0..1 + rng.index(3) {
        let value = rng.pick(&VALUES).to_string();
        let part = match rng.index(10) {
            0..=3 if nph > 0 => format!("ph{}.{}={value}", rng.index(nph), rng.pick(&PH_FIELDS)),
            4 | 5 if nsh > 0 => format!("sh{}.{}={value}", rng.index(nsh), rng.pick(&SH_FIELDS)),
            6 if ndyn > 0 => {
                format!("dyn{}.{}={value}", rng.index(ndyn), if rng.index(2) == 0 { "tag" } else { "val" })
            }
            7 => format!("eh.{}={value}", rng.pick(&EH_FIELDS)),
            8 => format!("bytes@{}={:x}", rng.index(data.len().min(1 << 16)), rng.next_u64()),
            _ => format!("truncate={}", rng.index(data.len())),
        };
        parts.push(part);
    }
    Some(parts.join(","))
}

/// Builds the mutant a recipe names. Fields are addressed by index (`ph3.offset`) or by the first entry of a type
/// (`ph.INTERP.offset`, `dyn.STRTAB.val`; `dyn.all.tag` sets every entry); values are numbers, `len` (the file's
/// length), `phoff`/`phdr` (the program header table's offset or address), `ehdr` (offset 0's address),
/// `+N`/`*2` (relative to the old value), or `rand`.
fn apply(data: &[u8], recipe: &str) -> Option<Vec<u8>> {
    let elf = Elf::parse(data).ok()?;
    let fmt = elf.fmt;
    let w = fmt.word_size() as usize;
    let (phoff, nph) = (elf.ehdr.e_phoff as usize, elf.phdrs.len());
    let phsz = fmt.phdr_size() as usize;
    let (shoff, shsz) = (elf.ehdr.e_shoff as usize, fmt.shdr_size() as usize);
    let phdr_addr =
        elf.phdrs.iter().find(|p| p.p_type == 1 && p.p_offset == 0).map_or(0, |p| p.p_vaddr + phoff as u64);
    let ehdr_addr = elf.phdrs.iter().find(|p| p.p_type == 1 && p.p_offset == 0).map_or(0, |p| p.p_vaddr);
    let dyn_off = elf.dynamic.as_ref().map(|d| (d.offset as usize, d.entries.len()));
    let mut out = data.to_vec();
    let mut rng =
        Rng::new(recipe.bytes().fold(0x1234_5678u64, |h, b| h.wrapping_mul(131) + u64::from(b)) | 1);
    for part in recipe.split(',') {
        let (target, value) = part.split_once('=')?;
        if target == "truncate" {
            out.truncate(value.parse().ok()?);
            continue;
        }
        if let Some(at) = target.strip_prefix("bytes@") {
            let at: usize = at.parse().ok()?;
            let v = u64::from_str_radix(value, 16).ok()?;
            for (k, b) in v.to_le_bytes().iter().enumerate() {
                if let Some(x) = out.get_mut(at + k) {
                    *x = *b;
                }
            }
            continue;
        }
        // (field offsets, field size) for the target.
        let (fields, size): (Vec<usize>, usize) = match target.split_once('.')? {
            ("eh", f) => {
                let (off, size) = match f {
                    "type" => (16, 2),
                    "machine" => (18, 2),
                    "phoff" => (24 + w, w),
                    "shoff" => (24 + 2 * w, w),
                    "phentsize" => (24 + 3 * w + 6, 2),
                    "phnum" => (24 + 3 * w + 8, 2),
                    "shentsize" => (24 + 3 * w + 10, 2),
                    "shnum" => (24 + 3 * w + 12, 2),
                    "shstrndx" => (24 + 3 * w + 14, 2),
                    _ => return None,
                };
                (vec![off], size)
            }
            (ph, f) if ph.starts_with("ph") => {
                let (index, f) = match ph.strip_prefix("ph").filter(|i| !i.is_empty()) {
                    Some(i) => (i.parse::<usize>().ok()?, f),
                    None => {
                        let (kind, f) = f.split_once('.')?;
                        let t = match kind {
                            "LOAD" => 1,
                            "DYNAMIC" => 2,
                            "INTERP" => 3,
                            "NOTE" => 4,
                            "PHDR" => 6,
                            _ => return None,
                        };
                        (elf.phdrs.iter().position(|p| p.p_type == t)?, f)
                    }
                };
                if index >= nph {
                    return None;
                }
                let base = phoff + index * phsz;
                let (off, size) = match (fmt.is64, f) {
                    (_, "type") => (0, 4),
                    (true, "flags") => (4, 4),
                    (false, "flags") => (24, 4),
                    (true, "offset") => (8, 8),
                    (true, "vaddr") => (16, 8),
                    (true, "filesz") => (32, 8),
                    (true, "memsz") => (40, 8),
                    (true, "align") => (48, 8),
                    (false, "offset") => (4, 4),
                    (false, "vaddr") => (8, 4),
                    (false, "filesz") => (16, 4),
                    (false, "memsz") => (20, 4),
                    (false, "align") => (28, 4),
                    _ => return None,
                };
                (vec![base + off], size)
            }
            (sh, f) if sh.starts_with("sh") => {
                let index: usize = sh[2..].parse().ok()?;
                let base = shoff + index * shsz;
                let (off, size) = match f {
                    "name" => (0, 4),
                    "type" => (4, 4),
                    "flags" => (8, w),
                    "addr" => (8 + w, w),
                    "offset" => (8 + 2 * w, w),
                    "size" => (8 + 3 * w, w),
                    "link" => (8 + 4 * w, 4),
                    "entsize" => (16 + 5 * w, w),
                    _ => return None,
                };
                (vec![base + off], size)
            }
            (d, f) if d.starts_with("dyn") => {
                let (start, count) = dyn_off?;
                let entries = &elf.dynamic.as_ref()?.entries;
                let (which, f) = match d.strip_prefix("dyn").filter(|i| !i.is_empty()) {
                    Some(i) => (vec![i.parse::<usize>().ok()?], f),
                    None => {
                        let (kind, f) = f.split_once('.')?;
                        let all: Vec<usize> = (0..count).collect();
                        match kind {
                            "all" => (all, f),
                            "STRTAB" => (vec![entries.iter().position(|e| e.tag == 5)?], f),
                            "NEEDED" => (vec![entries.iter().position(|e| e.tag == 1)?], f),
                            _ => return None,
                        }
                    }
                };
                let off = if f == "tag" { 0 } else { w };
                (which.iter().map(|i| start + i * 2 * w + off).collect(), w)
            }
            _ => return None,
        };
        for off in fields {
            let old = read(fmt, &out, off, size)?;
            let v = match value {
                "len" => data.len() as u64,
                "len-1" => data.len() as u64 - 1,
                "len+8" => data.len() as u64 + 8,
                "phoff" => phoff as u64,
                "phdr" => phdr_addr,
                "ehdr" => ehdr_addr,
                "-1" => u64::MAX,
                "*2" => old.wrapping_mul(2),
                "rand" => rng.next_u64(),
                v if v.starts_with('+') => old.wrapping_add(parse(&v[1..])?),
                v => parse(v)?,
            };
            write(fmt, &mut out, off, size, v)?;
        }
    }
    Some(out)
}

fn parse(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn read(fmt: Fmt, b: &[u8], off: usize, size: usize) -> Option<u64> {
    let bytes = b.get(off..off + size)?;
    Some(bytes.iter().enumerate().fold(0u64, |v, (i, &x)| {
        let shift = 8 * if fmt.big { size - 1 - i } else { i };
        v | (u64::from(x) << shift)
    }))
}

fn write(fmt: Fmt, b: &mut [u8], off: usize, size: usize, v: u64) -> Option<()> {
    let bytes = b.get_mut(off..off + size)?;
    for (i, x) in bytes.iter_mut().enumerate() {
        let shift = 8 * if fmt.big { size - 1 - i } else { i };
        *x = (v >> shift) as u8;
    }
    Some(())
}

/// A run of the tool under a kill timer.
fn run(args: &[&std::ffi::OsStr]) -> Run {
    use std::os::unix::process::ExitStatusExt;
    let out = Command::new("timeout")
        .args(["-s", "KILL", "20"])
        .arg(tool())
        .args(args)
        .env_remove("PATCHELF_DEBUG")
        .stdin(Stdio::null())
        .output()
        .expect("run the tool");
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether a run ended acceptably; `Err` says how it did not.
fn judge(run: &Run, file: &Path, before: &[u8]) -> Result<bool, String> {
    if let Some(sig) = run.signal {
        return Err(format!("killed by signal {sig}"));
    }
    match run.code {
        Some(0) => Ok(true),
        Some(1) => {
            if fs::read(file).map(|b| b != before).unwrap_or(true) {
                return Err("failed but changed its input".into());
            }
            let lines: Vec<&str> = run.stderr.lines().collect();
            let name = tool().file_name().unwrap().to_string_lossy().into_owned();
            if lines.len() != 1
                || !lines[0].starts_with(&format!("{name}: "))
                || run.stderr.contains("panicked")
            {
                return Err(format!("error is not one line naming the tool: {:?}", run.stderr));
            }
            Ok(false)
        }
        Some(137) => Err("hung (killed after 20 s)".into()),
        other => Err(format!("exit {other:?}: {}", run.stderr.lines().next().unwrap_or(""))),
    }
}

/// `readelf`'s warnings about a file, numbers and the file's name left out so that moved data compares equal.
fn warnings(file: &Path) -> BTreeSet<String> {
    let out = Command::new("readelf").args(["-lSdW"]).arg(file).output().expect("run readelf");
    let name = file.display().to_string();
    // One item per message: readelf ends some warnings without a newline, so split on its prefix.
    String::from_utf8_lossy(&out.stderr)
        .replace('\n', "")
        .split("readelf: ")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.replace(&name, "FILE");
            l.split(|c: char| !c.is_ascii_alphabetic() && c != ' ' && c != ':' && c != '\'')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join("#")
        })
        .collect()
}

/// Runs the prints and the edit on one mutant. `Ok(true)` when the edit succeeded (and its output passed).
fn check(mutant: &[u8], work: &Path) -> Result<bool, String> {
    let file = work.join("mutant");
    fs::write(&file, mutant).unwrap();
    // The interpreter apart: a library has none, and that error would end the other prints.
    for prints in [&PRINTS[..1], &PRINTS[1..]] {
        let mut args: Vec<&std::ffi::OsStr> = prints.iter().map(|p| p.as_ref()).collect();
        args.push(file.as_os_str());
        judge(&run(&args), &file, mutant).map_err(|e| format!("{prints:?}: {e}"))?;
        if fs::read(&file).map(|b| b != mutant).unwrap_or(true) {
            return Err(format!("{prints:?} changed its input"));
        }
    }
    // The interpreter too where the file has one (patchelf refuses --set-interpreter on a library).
    let has_interp = Elf::parse(mutant).is_ok_and(|e| e.phdrs.iter().any(|p| p.p_type == 3));
    let mut args: Vec<&std::ffi::OsStr> = vec!["--set-rpath".as_ref(), RPATH.as_ref()];
    if has_interp {
        args.extend([std::ffi::OsStr::new("--set-interpreter"), std::ffi::OsStr::new(INTERP)]);
    }
    args.push(file.as_os_str());
    if !judge(&run(&args), &file, mutant).map_err(|e| format!("edit: {e}"))? {
        return Ok(false);
    }
    // The output reads back, with the new values.
    let rpath = run(&["--print-rpath".as_ref(), file.as_os_str()]);
    if rpath.code != Some(0) || rpath.stdout != format!("{RPATH}\n") {
        return Err(format!("the edited file's run path does not read back: {rpath:?}"));
    }
    if has_interp {
        let interp = run(&["--print-interpreter".as_ref(), file.as_os_str()]);
        if interp.code != Some(0) || interp.stdout != format!("{INTERP}\n") {
            return Err(format!("the edited file's interpreter does not read back: {interp:?}"));
        }
    }
    let original = work.join("original");
    fs::write(&original, mutant).unwrap();
    let (before, after) = (warnings(&original), warnings(&file));
    let new: Vec<&String> = after.difference(&before).collect();
    if !new.is_empty() {
        return Err(format!("readelf warns about the edited file: {new:?}"));
    }
    Ok(true)
}
