//! Malformed-input corpus: corrupted variants of the fixtures (truncations, header fields out of range, absurd
//! counts, overlapping or out-of-file segments, bad string-table and dynamic-entry offsets, broken hash and version
//! tables, random byte flips; deterministic seed) run through every print and edit option.
//!
//! Each run must exit 0, or exit 1 with one line `patchelf-rs: <file>: <reason>` (I/O errors name the file in
//! patchelf's wording instead); never die by a signal, never exit 101 (a panic), never hang, never change a file it
//! failed on, never leave a temporary file. Failing inputs are kept under `<target tmp>/patchelf-rs/malformed-failures/`.

mod common;

use common::*;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::rng::Rng;

/// Class and byte order of an ELF image, with field accessors that respect both.
#[derive(Clone, Copy)]
struct Layout {
    is64: bool,
    le: bool,
}

impl Layout {
    fn of(b: &[u8]) -> Layout {
        Layout { is64: b[4] == 2, le: b[5] == 1 }
    }
    fn get(self, b: &[u8], off: usize, size: usize) -> u64 {
        let mut v = 0u64;
        for i in 0..size {
            let byte = b[off + if self.le { size - 1 - i } else { i }] as u64;
            v = (v << 8) | byte;
        }
        v
    }
    fn put(self, b: &mut [u8], off: usize, size: usize, val: u64) {
        for i in 0..size {
            let shift = 8 * if self.le { i } else { size - 1 - i };
            b[off + i] = (val >> shift) as u8;
        }
    }
    fn word(self) -> usize {
        if self.is64 { 8 } else { 4 }
    }
}

/// A named field: its offset and size in the file.
#[derive(Clone, Copy)]
struct Field {
    off: usize,
    size: usize,
}

struct Header {
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

fn header_fields(l: Layout) -> Vec<(&'static str, Field)> {
    let f = |off, size| Field { off, size };
    if l.is64 {
        vec![
            ("e_type", f(16, 2)),
            ("e_machine", f(18, 2)),
            ("e_version", f(20, 4)),
            ("e_phoff", f(32, 8)),
            ("e_shoff", f(40, 8)),
            ("e_ehsize", f(52, 2)),
            ("e_phentsize", f(54, 2)),
            ("e_phnum", f(56, 2)),
            ("e_shentsize", f(58, 2)),
            ("e_shnum", f(60, 2)),
            ("e_shstrndx", f(62, 2)),
        ]
    } else {
        vec![
            ("e_type", f(16, 2)),
            ("e_machine", f(18, 2)),
            ("e_version", f(20, 4)),
            ("e_phoff", f(28, 4)),
            ("e_shoff", f(32, 4)),
            ("e_ehsize", f(40, 2)),
            ("e_phentsize", f(42, 2)),
            ("e_phnum", f(44, 2)),
            ("e_shentsize", f(46, 2)),
            ("e_shnum", f(48, 2)),
            ("e_shstrndx", f(50, 2)),
        ]
    }
}

fn header(l: Layout, b: &[u8]) -> Header {
    let g = |name: &str| {
        let (_, f) = header_fields(l).into_iter().find(|(n, _)| *n == name).unwrap();
        l.get(b, f.off, f.size)
    };
    Header {
        phoff: g("e_phoff"),
        phentsize: g("e_phentsize"),
        phnum: g("e_phnum"),
        shoff: g("e_shoff"),
        shentsize: g("e_shentsize"),
        shnum: g("e_shnum"),
        shstrndx: g("e_shstrndx"),
    }
}

/// Fields of one program header at `base`.
fn phdr_fields(l: Layout, base: usize) -> Vec<(&'static str, Field)> {
    let f = |off, size| Field { off: base + off, size };
    if l.is64 {
        vec![
            ("p_type", f(0, 4)),
            ("p_flags", f(4, 4)),
            ("p_offset", f(8, 8)),
            ("p_vaddr", f(16, 8)),
            ("p_filesz", f(32, 8)),
            ("p_memsz", f(40, 8)),
            ("p_align", f(48, 8)),
        ]
    } else {
        vec![
            ("p_type", f(0, 4)),
            ("p_offset", f(4, 4)),
            ("p_vaddr", f(8, 4)),
            ("p_filesz", f(16, 4)),
            ("p_memsz", f(20, 4)),
            ("p_flags", f(24, 4)),
            ("p_align", f(28, 4)),
        ]
    }
}

fn shdr_fields(l: Layout, base: usize) -> Vec<(&'static str, Field)> {
    let f = |off, size| Field { off: base + off, size };
    if l.is64 {
        vec![
            ("sh_name", f(0, 4)),
            ("sh_type", f(4, 4)),
            ("sh_offset", f(24, 8)),
            ("sh_size", f(32, 8)),
            ("sh_link", f(40, 4)),
            ("sh_entsize", f(56, 8)),
        ]
    } else {
        vec![
            ("sh_name", f(0, 4)),
            ("sh_type", f(4, 4)),
            ("sh_offset", f(16, 4)),
            ("sh_size", f(20, 4)),
            ("sh_link", f(24, 4)),
            ("sh_entsize", f(36, 4)),
        ]
    }
}

fn field(fields: &[(&'static str, Field)], name: &str) -> Field {
    fields.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).unwrap()
}

const PT_LOAD: u64 = 1;
const PT_DYNAMIC: u64 = 2;
const PT_INTERP: u64 = 3;

fn segment_name(t: u64) -> String {
    match t {
        1 => "LOAD".into(),
        2 => "DYNAMIC".into(),
        3 => "INTERP".into(),
        4 => "NOTE".into(),
        6 => "PHDR".into(),
        0x6474e550 => "EH_FRAME".into(),
        0x6474e551 => "STACK".into(),
        0x6474e552 => "RELRO".into(),
        0x6474e553 => "PROPERTY".into(),
        other => format!("{other:#x}"),
    }
}

/// Sections by name: (name, base offset of the header, sh_offset, sh_size).
fn sections(l: Layout, b: &[u8], h: &Header) -> Vec<(String, usize, u64, u64)> {
    let mut out = Vec::new();
    if h.shnum == 0 || h.shoff == 0 || h.shoff + h.shnum * h.shentsize > b.len() as u64 {
        return out;
    }
    let base = |i: u64| (h.shoff + i * h.shentsize) as usize;
    let strtab = shdr_fields(l, base(h.shstrndx));
    let str_off = l.get(b, field(&strtab, "sh_offset").off, l.word()) as usize;
    for i in 0..h.shnum {
        let f = shdr_fields(l, base(i));
        let name_off = l.get(b, field(&f, "sh_name").off, 4) as usize;
        let name: String =
            b[str_off + name_off..].iter().take_while(|&&c| c != 0).map(|&c| c as char).collect();
        let off = l.get(b, field(&f, "sh_offset").off, l.word());
        let size = l.get(b, field(&f, "sh_size").off, l.word());
        out.push((name, base(i), off, size));
    }
    out
}

struct Variant {
    name: String,
    bytes: Vec<u8>,
}

impl Variant {
    /// The kind of corruption and how many variants of that kind (per fixture) the default run samples.
    fn category(&self) -> (&'static str, usize) {
        let kind = self.name.split_once(':').map_or("", |(_, k)| k);
        let contents = kind.starts_with(".gnu.hash.")
            && ["nbuckets", "symoffset", "bloom_size", "bloom_shift"].iter().any(|f| kind.contains(f))
            || kind.starts_with(".gnu.version_r.vn_");
        match kind {
            _ if kind.starts_with("truncate") => ("truncate", 4),
            _ if kind.starts_with("ident") => ("ident", 2),
            _ if kind.starts_with("e_") => ("header", 5),
            _ if kind.contains("overlaps-first") || kind.contains("at-elf-header") => ("overlap", 2),
            _ if kind.starts_with("ph") => ("phdr", 5),
            _ if kind.starts_with("interp-without-nul") => ("interp", 1),
            _ if kind.starts_with("dynamic-without-null") => ("dyn-null", 1),
            _ if kind.starts_with("dyn") && kind.contains("random") => ("dyn-random", 1),
            _ if kind.starts_with("dyn") => ("dyn", 5),
            _ if contents => ("contents", 3),
            _ if kind.starts_with('.') => ("section", 4),
            _ => ("flip", 3),
        }
    }
}

/// A deterministic, stratified sample of one fixture's variants: a few of each kind, so that every kind of
/// corruption is exercised while the test stays within its time budget. `FHSKIT_CORPUS_FULL=1` runs everything.
fn sample(all: Vec<Variant>, rng: &mut Rng) -> Vec<Variant> {
    if std::env::var("FHSKIT_CORPUS_FULL").as_deref() == Ok("1") {
        return all;
    }
    let mut by_kind: std::collections::BTreeMap<(&'static str, usize), Vec<Variant>> = Default::default();
    for v in all {
        by_kind.entry(v.category()).or_default().push(v);
    }
    let mut out = Vec::new();
    for ((_, cap), mut vs) in by_kind {
        while vs.len() > cap {
            let i = rng.below(vs.len() as u64) as usize;
            vs.swap_remove(i);
        }
        out.extend(vs);
    }
    out
}

/// Builds the corrupted variants of one fixture.
fn variants(fixture_name: &str, orig: &[u8], rng: &mut Rng) -> Vec<Variant> {
    let l = Layout::of(orig);
    let h = header(l, orig);
    let len = orig.len() as u64;
    let mut out = Vec::new();
    let mut add =
        |name: String, bytes: Vec<u8>| out.push(Variant { name: format!("{fixture_name}:{name}"), bytes });
    let max = if l.is64 { u64::MAX } else { u32::MAX as u64 };
    let set = |name: &str, f: Field, v: u64, add: &mut dyn FnMut(String, Vec<u8>)| {
        let mut b = orig.to_vec();
        l.put(&mut b, f.off, f.size, v);
        add(format!("{name}={v:#x}"), b);
    };

    // Truncations: inside the ELF header, the program header table, every segment, and the end.
    let mut cuts: Vec<u64> =
        vec![0, 1, 3, 4, 5, 6, 16, 18, 20, 24, 28, 32, 40, 48, 52, 60, 63, 64, len / 2, len - 1];
    for i in 0..=2 * h.phnum {
        cuts.push(h.phoff + i * h.phentsize / 2);
    }
    let phdrs: Vec<usize> = (0..h.phnum).map(|i| (h.phoff + i * h.phentsize) as usize).collect();
    for &base in &phdrs {
        let f = phdr_fields(l, base);
        let off = l.get(orig, field(&f, "p_offset").off, l.word());
        let sz = l.get(orig, field(&f, "p_filesz").off, l.word());
        cuts.extend([off + 1, off + sz / 2, off + sz.saturating_sub(1)]);
    }
    cuts.sort();
    cuts.dedup();
    for c in cuts.into_iter().filter(|&c| c < len) {
        add(format!("truncate@{c}"), orig[..c as usize].to_vec());
    }

    // ELF identification and header fields.
    for (i, v) in [(4usize, 0u8), (4, 3), (5, 0), (5, 3), (5, if l.le { 2 } else { 1 }), (6, 0), (0, b'X')] {
        let mut b = orig.to_vec();
        b[i] = v;
        add(format!("ident[{i}]={v}"), b);
    }
    for (name, f) in header_fields(l) {
        let fmax = if f.size == 8 { u64::MAX } else { (1u64 << (8 * f.size)) - 1 };
        let mut values = vec![0, 1, fmax, len, len - 1];
        match name {
            "e_phnum" => values.extend([h.phnum + 1, h.phnum * 100, 0xffff]),
            "e_shnum" => values.extend([h.shnum + 1, 0xffff]),
            "e_phentsize" => values.extend([h.phentsize - 1, h.phentsize + 8]),
            "e_phoff" => values.extend([max - 7, h.phoff + 1, len - h.phentsize]),
            "e_shoff" => values.extend([max - 7, h.shoff + 1]),
            "e_shstrndx" => values.extend([h.shnum, 0xfffe]),
            "e_type" => values.extend([2, 3, 4]),
            _ => {}
        }
        values.sort();
        values.dedup();
        for v in values.into_iter().filter(|&v| v <= fmax) {
            set(name, f, v, &mut add);
        }
    }

    // Program headers: every kind, offsets and sizes out of the file, absurd alignments.
    let mut first_load = None;
    for (i, &base) in phdrs.iter().enumerate() {
        let f = phdr_fields(l, base);
        let t = l.get(orig, field(&f, "p_type").off, 4);
        let kind = segment_name(t);
        if t == PT_LOAD && first_load.is_none() {
            first_load = Some(base);
        }
        for (fname, values) in [
            ("p_offset", vec![len, len - 1, max, max - 7]),
            ("p_filesz", vec![0, len * 2, max]),
            ("p_memsz", vec![0, max]),
            ("p_vaddr", vec![0, max - 0xfff, 1]),
            ("p_align", vec![0, 3, 1 << 31]),
        ] {
            for v in values {
                set(&format!("ph{i}.{kind}.{fname}"), field(&f, fname), v, &mut add);
            }
        }
        // Another segment turned into a second PT_DYNAMIC or PT_INTERP.
        if t != PT_DYNAMIC && t != PT_INTERP {
            for nt in [PT_DYNAMIC, PT_INTERP] {
                set(&format!("ph{i}.{kind}.p_type"), field(&f, "p_type"), nt, &mut add);
            }
        }
    }
    // Overlapping segments: every LOAD made to overlap the first one; DYNAMIC and INTERP pointed at the ELF header.
    if let Some(first) = first_load {
        let ff = phdr_fields(l, first);
        for (i, &base) in phdrs.iter().enumerate() {
            if base == first {
                continue;
            }
            let f = phdr_fields(l, base);
            let t = l.get(orig, field(&f, "p_type").off, 4);
            let mut b = orig.to_vec();
            if t == PT_LOAD {
                for name in ["p_offset", "p_vaddr", "p_filesz", "p_memsz"] {
                    let v = l.get(orig, field(&ff, name).off, l.word());
                    l.put(&mut b, field(&f, name).off, l.word(), v);
                }
                add(format!("ph{i}.LOAD.overlaps-first"), b);
            } else if t == PT_DYNAMIC || t == PT_INTERP {
                l.put(&mut b, field(&f, "p_offset").off, l.word(), 0);
                l.put(
                    &mut b,
                    field(&f, "p_vaddr").off,
                    l.word(),
                    l.get(orig, field(&ff, "p_vaddr").off, l.word()),
                );
                add(format!("ph{i}.{}.at-elf-header", segment_name(t)), b);
            }
        }
    }
    // An interpreter without its terminating NUL.
    for &base in &phdrs {
        let f = phdr_fields(l, base);
        if l.get(orig, field(&f, "p_type").off, 4) == PT_INTERP {
            let off = l.get(orig, field(&f, "p_offset").off, l.word()) as usize;
            let sz = l.get(orig, field(&f, "p_filesz").off, l.word()) as usize;
            let mut b = orig.to_vec();
            b[off + sz - 1] = b'/';
            add("interp-without-nul".into(), b);
        }
    }

    // Dynamic entries: string table and pointers out of range, string offsets out of range, no DT_NULL.
    let dynamic = phdrs.iter().find_map(|&base| {
        let f = phdr_fields(l, base);
        (l.get(orig, field(&f, "p_type").off, 4) == PT_DYNAMIC).then(|| {
            (
                l.get(orig, field(&f, "p_offset").off, l.word()),
                l.get(orig, field(&f, "p_filesz").off, l.word()),
            )
        })
    });
    if let Some((doff, dsz)) = dynamic {
        let ent = 2 * l.word();
        let n = (dsz as usize) / ent;
        for i in 0..n {
            let at = doff as usize + i * ent;
            let tag = l.get(orig, at, l.word());
            let tag_name = match tag {
                0 => continue,
                1 => "NEEDED",
                5 => "STRTAB",
                6 => "SYMTAB",
                10 => "STRSZ",
                4 => "HASH",
                0x6ffffef5 => "GNU_HASH",
                14 => "SONAME",
                15 => "RPATH",
                29 => "RUNPATH",
                0x6ffffffe => "VERNEED",
                0x6fffffff => "VERNEEDNUM",
                0x6ffffff0 => "VERSYM",
                0x6ffffffc => "VERDEF",
                0x6ffffffd => "VERDEFNUM",
                0x6ffffffb => "FLAGS_1",
                23 => "JMPREL",
                7 => "RELA",
                12 => "INIT",
                _ => continue,
            };
            for v in [0, 1, len, max, max - 7, 0x7fff_ffff] {
                let mut b = orig.to_vec();
                l.put(&mut b, at + l.word(), l.word(), v);
                add(format!("dyn{i}.{tag_name}={v:#x}"), b);
            }
        }
        // No terminator: every DT_NULL becomes DT_DEBUG, so the table runs to the end of the segment.
        let mut b = orig.to_vec();
        for i in 0..n {
            let at = doff as usize + i * ent;
            if l.get(orig, at, l.word()) == 0 {
                l.put(&mut b, at, l.word(), 21);
            }
        }
        add("dynamic-without-null".into(), b);
        // Random tags and values.
        for k in 0..6 {
            let mut b = orig.to_vec();
            let i = rng.below(n as u64) as usize;
            let at = doff as usize + i * ent + if k % 2 == 0 { 0 } else { l.word() };
            l.put(&mut b, at, l.word(), rng.next_u64() & max);
            add(format!("dyn{i}.random{k}"), b);
        }
    }

    // Section headers of the structures the tool reads.
    let secs = sections(l, orig, &h);
    for (name, base, off, size) in &secs {
        if !matches!(
            name.as_str(),
            ".interp"
                | ".dynamic"
                | ".dynstr"
                | ".dynsym"
                | ".gnu.version_r"
                | ".gnu.version"
                | ".gnu.hash"
                | ".shstrtab"
        ) {
            continue;
        }
        let f = shdr_fields(l, *base);
        for (fname, values) in [
            ("sh_offset", vec![len, max - 7]),
            ("sh_size", vec![max, len * 2]),
            ("sh_link", vec![0xffff, h.shnum]),
            ("sh_name", vec![u32::MAX as u64]),
            ("sh_type", vec![8]),
            ("sh_entsize", vec![0, 1]),
        ] {
            for v in values {
                set(&format!("{name}.{fname}"), field(&f, fname), v, &mut add);
            }
        }
        // Contents: hash table header and version needs with absurd counts and links.
        let o = *off as usize;
        if name == ".gnu.hash" && size >= &16 {
            for (k, what) in ["nbuckets", "symoffset", "bloom_size", "bloom_shift"].iter().enumerate() {
                for v in [0, 0xffff_ffff] {
                    let mut b = orig.to_vec();
                    l.put(&mut b, o + 4 * k, 4, v);
                    add(format!(".gnu.hash.{what}={v:#x}"), b);
                }
            }
        }
        if name == ".gnu.version_r" && size >= &16 {
            for (at, what, size) in
                [(2, "vn_cnt", 2), (4, "vn_file", 4), (8, "vn_aux", 4), (12, "vn_next", 4)]
            {
                for v in [0xffff_ffffu64, 0x7fff_fff0, 1] {
                    let mut b = orig.to_vec();
                    l.put(&mut b, o + at, size, v & ((1u64 << (8 * size)) - 1));
                    add(format!(".gnu.version_r.{what}={v:#x}"), b);
                }
            }
        }
    }

    // Random byte flips in the headers and tables (the first 4 KiB) and anywhere in the file.
    for k in 0..30 {
        let mut b = orig.to_vec();
        let span = if k < 20 { len.min(4096) } else { len };
        let flips = 1 + rng.below(4);
        for _ in 0..flips {
            let at = rng.below(span) as usize;
            b[at] ^= 1 + rng.below(255) as u8;
        }
        add(format!("flip{k}"), b);
    }
    out
}

/// The option sets run on every variant: each print option alone, then each edit alone.
fn option_sets(map: &Path) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut sets: Vec<Vec<String>> = [
        "--print-interpreter",
        "--print-rpath",
        "--print-needed",
        "--print-soname",
        "--print-execstack",
        "--print-os-abi",
    ]
    .iter()
    .map(|o| s(&[o]))
    .collect();
    sets.extend([
        s(&["--set-interpreter", "/a/much/longer/interpreter/path/than/any/original/one/ld.so"]),
        s(&["--set-rpath", "/a/longer/rpath/value/that/cannot/fit/in/place:/and/another"]),
        s(&["--add-rpath", "/added"]),
        s(&["--remove-rpath"]),
        s(&["--shrink-rpath", "--allowed-rpath-prefixes", "/usr:/lib"]),
        s(&["--force-rpath", "--set-rpath", "/forced"]),
        s(&["--add-needed", "libadded.so.1"]),
        s(&["--remove-needed", "libc.so.6"]),
        s(&["--replace-needed", "libc.so.6", "libreplaced.so.6"]),
        s(&["--set-soname", "libnew-soname.so.1"]),
        s(&["--no-default-lib"]),
        s(&["--clear-symbol-version", "printf"]),
        s(&["--add-debug-tag"]),
        s(&["--set-execstack"]),
        s(&["--clear-execstack"]),
        s(&["--set-os-abi", "linux"]),
        s(&["--rename-dynamic-symbols", &map.display().to_string()]),
        s(&["--build-resolution-cache"]),
        s(&[
            "--page-size",
            "65536",
            "--set-interpreter",
            "/x/y",
            "--add-needed",
            "liba.so",
            "--set-rpath",
            "/r",
        ]),
    ]);
    sets
}

/// The child a worker is waiting for and since when; a watchdog thread kills it when it runs too long.
type Watched = Arc<Mutex<Option<(u32, Instant)>>>;

const HANG: Duration = Duration::from_secs(20);

fn watchdog(watched: Watched, done: Arc<AtomicBool>) {
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let current = *watched.lock().unwrap();
        if let Some((pid, since)) = current
            && since.elapsed() > HANG
        {
            // SAFETY: kill(2) on a pid is memory-safe; the pid is our unreaped child (the worker clears the slot
            // before reaping), so it cannot have been reused.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Runs one command with stdout/stderr in files under the watchdog; returns the run and whether it hung.
fn run_bounded(args: &[String], out_dir: &Path, watched: &Watched) -> Option<Run> {
    use std::os::unix::process::ExitStatusExt;
    let (o, e) = (out_dir.join("stdout"), out_dir.join("stderr"));
    let mut child = Command::new(tool())
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&o).unwrap())
        .stderr(File::create(&e).unwrap())
        .spawn()
        .expect("spawn the tool");
    let start = Instant::now();
    *watched.lock().unwrap() = Some((child.id(), start));
    // Wait without reaping, clear the watch, then reap: the watchdog never signals a reaped (reusable) pid.
    let mut info: libc::siginfo_t = unsafe_zeroed_siginfo();
    // SAFETY: waitid with WNOWAIT on our own child writes only into `info`, which is valid for writes.
    let r = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, libc::WEXITED | libc::WNOWAIT) };
    assert_eq!(r, 0, "waitid: {}", std::io::Error::last_os_error());
    *watched.lock().unwrap() = None;
    let status = child.wait().expect("reap the tool");
    if start.elapsed() > HANG {
        return None;
    }
    Some(Run {
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&fs::read(o).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(e).unwrap()).into_owned(),
    })
}

fn unsafe_zeroed_siginfo() -> libc::siginfo_t {
    // SAFETY: siginfo_t is a plain C struct for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// Checks one run on `file`; returns a description of what went wrong, if anything.
fn judge(run: Option<&Run>, file: &Path, before: &[u8], dir: &Path) -> Option<String> {
    let Some(run) = run else { return Some("hung (killed after 20 s)".into()) };
    if let Some(sig) = run.signal {
        return Some(format!("killed by signal {sig}"));
    }
    let entries = list_dir(dir);
    if entries != vec!["input".to_owned()] {
        return Some(format!("left files behind: {entries:?}"));
    }
    match run.code {
        Some(0) => None,
        Some(1) => {
            let lines: Vec<&str> = run.stderr.lines().collect();
            let changed = fs::read(file).map(|b| b != before).unwrap_or(true);
            if changed {
                Some("failed but changed the input".into())
            } else if run.stderr.contains("panicked") {
                Some(format!("panic message: {}", run.stderr))
            } else if lines.len() != 1 {
                Some(format!("error is not one line: {:?}", run.stderr))
            } else if !lines[0].starts_with("patchelf-rs: ") && !lines[0].starts_with("patchelf: ") {
                Some(format!("error without the program prefix: {:?}", lines[0]))
            } else if !lines[0].contains(&*file.to_string_lossy()) {
                Some(format!("error does not name the file: {:?}", lines[0]))
            } else {
                None
            }
        }
        Some(101) => Some(format!("panicked (exit 101): {}", run.stderr.lines().next().unwrap_or(""))),
        other => Some(format!("exit {other:?}: {}", run.stderr.lines().next().unwrap_or(""))),
    }
}

#[test]
fn corrupted_fixtures_never_crash_the_tool() {
    let mut rng = Rng::new(0x5eed_0fc0_ffee_u64);
    let mut corpus = Vec::new();
    for name in ["usefoo", "hello-nopie", "libfoo", "hello32", "hello-s390x"] {
        let Ok(path) = try_fixture(name) else {
            test_support::unmet(format!("fixture {name}: its compiler is not installed"));
            continue;
        };
        let orig = fs::read(&path).unwrap();
        let all = variants(name, &orig, &mut rng);
        corpus.extend(sample(all, &mut rng));
    }
    let side = TestDir::new("malformed_side");
    let map = side.join("map");
    write(&map, "printf printf_renamed\nelf_foo_value elf_foo_value_renamed\n");
    let sets = option_sets(&map);
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 4);
    println!("{} variants x {} option sets on {workers} threads", corpus.len(), sets.len());
    let started = Instant::now();

    let failures: Vec<String> = std::thread::scope(|scope| {
        let chunks: Vec<&[Variant]> = corpus.chunks(corpus.len().div_ceil(workers)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .enumerate()
            .map(|(w, chunk)| {
                let sets = &sets;
                scope.spawn(move || {
                    let watched: Watched = Arc::new(Mutex::new(None));
                    let done = Arc::new(AtomicBool::new(false));
                    let dog = {
                        let (w, d) = (watched.clone(), done.clone());
                        std::thread::spawn(move || watchdog(w, d))
                    };
                    let work = TestDir::new(&format!("malformed_w{w}"));
                    let dir = work.join("d");
                    let out = work.join("o");
                    fs::create_dir_all(&dir).unwrap();
                    fs::create_dir_all(&out).unwrap();
                    let file = dir.join("input");
                    let mut failures = Vec::new();
                    for v in chunk {
                        for set in sets {
                            fs::write(&file, &v.bytes).unwrap();
                            let mut a = set.clone();
                            a.push(file.display().to_string());
                            let run = run_bounded(&a, &out, &watched);
                            if let Some(problem) = judge(run.as_ref(), &file, &v.bytes, &dir) {
                                failures.push((v.name.clone(), set.join(" "), problem, v.bytes.clone()));
                            }
                            // A fresh directory for the next run, whatever this one left.
                            for e in list_dir(&dir) {
                                let _ = fs::remove_file(dir.join(e));
                            }
                        }
                    }
                    done.store(true, Ordering::Relaxed);
                    dog.join().expect("watchdog");
                    failures
                })
            })
            .collect();
        let all: Vec<(String, String, String, Vec<u8>)> =
            handles.into_iter().flat_map(|h| h.join().expect("worker")).collect();
        keep_failures(&all)
    });
    println!("corpus done in {:?}", started.elapsed());
    // Most severe first: crashes and hangs, then damage to files, then the wording of errors.
    let severity = |l: &String| {
        ["signal", "hung", "panicked", "exit ", "changed the input", "left files"]
            .iter()
            .position(|k| l.contains(k))
            .unwrap_or(9)
    };
    let mut failures = failures;
    failures.sort_by_key(severity);
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for l in &failures {
        let problem =
            l.split("]: ").nth(1).unwrap_or("").split([':', '(']).next().unwrap_or("").trim().to_owned();
        *counts.entry(problem).or_default() += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failing runs: {counts:#?}\nfirst 40, most severe first:\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Saves each failing variant once for inspection and returns one line per failing run.
fn keep_failures(all: &[(String, String, String, Vec<u8>)]) -> Vec<String> {
    let keep: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("patchelf-rs/malformed-failures");
    let _ = fs::remove_dir_all(&keep);
    let mut lines = Vec::new();
    for (variant, opts, problem, bytes) in all {
        let file = keep.join(variant.replace(['/', ':', '='], "_"));
        if !file.exists() {
            let _ = fs::create_dir_all(&keep);
            let _ = fs::write(&file, bytes);
        }
        lines.push(format!("{variant} [{opts}]: {problem} (input kept at {})", file.display()));
    }
    lines
}
