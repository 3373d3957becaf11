//! Dynamic-linking facts, read only: what the loader needs to know about one ELF file (class, machine, type,
//! interpreter, `DT_NEEDED`, `DT_RPATH`, `DT_RUNPATH`, `DT_SONAME`), run-path entries with `$ORIGIN`, `$LIB` and
//! `$PLATFORM` expanded as glibc expands them, and the analysis of a program's *bundle*: which of its needs its own
//! files satisfy when searched in the loader's order, and which must come from elsewhere.
//!
//! This is the one ELF reader of the workspace outside the rewriting engine: it parses through [`Elf`] (header,
//! program headers and the dynamic segment only), so `fhsenv` (sorting libraries by class, keying `ld.so.cache`),
//! `pkgs` (indexing the libraries of a realised package) and `cli` (`fhskit run`, `patch`) all read files the same
//! way. Nothing here writes; `edit` and `layout` do the rewriting.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::elf::{Elf, str_at};
use crate::error::Malformed;
use crate::raw::{DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, EM_386, EM_AARCH64, EM_X86_64, ET_DYN};

/// Why a file's dynamic-linking facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: Malformed },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReadError {
    let path = path.to_owned();
    move |source| ReadError::Io { action, path, source }
}

/// The word size of an ELF file; libraries of one class never satisfy the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Elf32,
    Elf64,
}

impl Class {
    /// 32 or 64.
    pub fn bits(self) -> u8 {
        match self {
            Class::Elf32 => 32,
            Class::Elf64 => 64,
        }
    }

    pub fn from_bits(bits: u8) -> Option<Class> {
        match bits {
            32 => Some(Class::Elf32),
            64 => Some(Class::Elf64),
            _ => None,
        }
    }

    /// What glibc substitutes for `$LIB` on x86 (`lib64` for 64-bit objects, `lib` for 32-bit ones).
    pub fn lib_token(self) -> &'static str {
        match self {
            Class::Elf64 => "lib64",
            Class::Elf32 => "lib",
        }
    }
}

/// The machine of the other class in the same family (x86-64 ↔ i386), for a 64-bit program's 32-bit helpers and
/// the other way round; other machines have one class.
pub fn machine_for(class: Class, machine: u16) -> u16 {
    match (class, machine) {
        (Class::Elf32, EM_X86_64) => EM_386,
        (Class::Elf64, EM_386) => EM_X86_64,
        _ => machine,
    }
}

/// The multiarch triplet of Debian-style library directories (`lib/x86_64-linux-gnu`).
pub fn multiarch_triplet(class: Class, machine: u16) -> Option<&'static str> {
    match (class, machine) {
        (Class::Elf64, EM_X86_64) => Some("x86_64-linux-gnu"),
        (Class::Elf32, EM_386) => Some("i386-linux-gnu"),
        (Class::Elf64, EM_AARCH64) => Some("aarch64-linux-gnu"),
        _ => None,
    }
}

/// What glibc substitutes for `$PLATFORM` (the kernel's `AT_PLATFORM`).
fn platform(class: Class, machine: u16) -> &'static str {
    match (class, machine) {
        (Class::Elf32, EM_386 | EM_X86_64) => "i686",
        (_, EM_AARCH64) => "aarch64",
        _ => "x86_64",
    }
}

/// The directories the loader searches by default and a Debian system keeps libraries of this class in, relative
/// to `/`, most specific first (merged `/usr` or not).
pub fn system_lib_dirs(class: Class, machine: u16) -> Vec<String> {
    let mut dirs = Vec::new();
    if let Some(t) = multiarch_triplet(class, machine) {
        dirs.push(format!("lib/{t}"));
        dirs.push(format!("usr/lib/{t}"));
    }
    let own: &[&str] = match class {
        Class::Elf64 => &["lib64", "usr/lib64", "lib", "usr/lib"],
        Class::Elf32 => &["lib32", "usr/lib32", "lib", "usr/lib"],
    };
    dirs.extend(own.iter().map(|d| (*d).to_owned()));
    dirs
}

/// Whether `dir` (absolute, or relative to a root) is one of the loader's default or multiarch directories, of any
/// class: libraries found there belong to the system, not to an application's bundle.
pub fn is_system_dir(dir: &Path) -> bool {
    let norm = normalize(dir);
    let s = norm.to_string_lossy();
    let rest = s.trim_start_matches('/');
    let rest = rest.strip_prefix("usr/").unwrap_or(rest);
    match rest {
        "lib" | "lib64" | "lib32" | "libx32" => true,
        _ => rest.strip_prefix("lib/").is_some_and(|t| !t.contains('/') && t.contains("-linux-")),
    }
}

/// Lexically normalised path: `.` dropped, `..` applied (no file-system access).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The dynamic-linking facts of one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicInfo {
    pub path: PathBuf,
    pub class: Class,
    /// `e_machine`.
    pub machine: u16,
    /// `e_type` (`ET_EXEC`, `ET_DYN`, …).
    pub e_type: u16,
    /// `PT_INTERP`, when the file has one (executables and PIEs; not shared libraries).
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    /// `DT_RPATH` entries, as written (tokens not expanded).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries, as written.
    pub runpath: Vec<String>,
    pub soname: Option<String>,
    /// Whether the file has a dynamic segment at all (a static executable has none).
    pub dynamic: bool,
}

/// Whether the first bytes of a file are ELF's magic.
pub fn is_elf_magic(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// Reads only the class from the first five bytes; `None` for anything that is not ELF.
pub fn peek_class(path: &Path) -> Option<Class> {
    let mut ident = [0u8; 5];
    File::open(path).ok()?.read_exact(&mut ident).ok()?;
    if !is_elf_magic(&ident) {
        return None;
    }
    match ident[4] {
        1 => Some(Class::Elf32),
        2 => Some(Class::Elf64),
        _ => None,
    }
}

impl DynamicInfo {
    /// Reads the facts of `path`; `Ok(None)` when it is not an ELF file (a script, data, a short file).
    pub fn read(path: &Path) -> Result<Option<DynamicInfo>, ReadError> {
        let file = File::open(path).map_err(io("open", path))?;
        let len = file.metadata().map_err(io("stat", path))?.len();
        if len < 64 {
            let mut head = Vec::new();
            file.take(64).read_to_end(&mut head).map_err(io("read", path))?;
            if !is_elf_magic(&head) {
                return Ok(None);
            }
            return DynamicInfo::parse(path, &head).map(Some);
        }
        // SAFETY: a private read-only map; a file truncated by someone else while it is read can at worst raise
        // SIGBUS, the same risk every ELF reader (ld.so included) takes. Only headers are touched.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io("map", path))?;
        if !is_elf_magic(&map) {
            return Ok(None);
        }
        DynamicInfo::parse(path, &map).map(Some)
    }

    /// Parses the facts from the bytes of an ELF file named `path`.
    pub fn parse(path: &Path, data: &[u8]) -> Result<DynamicInfo, ReadError> {
        let bad = |reason: Malformed| ReadError::Malformed { path: path.to_owned(), reason };
        let elf = Elf::parse(data).map_err(bad)?;
        let interpreter = elf.interp().ok().map(|b| String::from_utf8_lossy(b).into_owned());
        let mut info = DynamicInfo {
            path: path.to_owned(),
            class: if elf.fmt.is64 { Class::Elf64 } else { Class::Elf32 },
            machine: elf.ehdr.e_machine,
            e_type: elf.ehdr.e_type,
            interpreter,
            needed: Vec::new(),
            rpath: Vec::new(),
            runpath: Vec::new(),
            soname: None,
            dynamic: elf.dynamic.is_some(),
        };
        let Some(dynamic) = &elf.dynamic else { return Ok(info) };
        if !dynamic.entries.iter().any(|d| matches!(d.tag, DT_NEEDED | DT_RPATH | DT_RUNPATH | DT_SONAME)) {
            return Ok(info);
        }
        let strtab = match elf.dynstr() {
            Ok(s) => s,
            Err(crate::Error::Malformed(m)) => return Err(bad(m)),
            Err(_) => return Err(bad(Malformed::Invalid("no dynamic string table"))),
        };
        let text =
            |off: u64| str_at(strtab, off).map(|s| String::from_utf8_lossy(s).into_owned()).map_err(bad);
        for d in &dynamic.entries {
            match d.tag {
                DT_NEEDED => info.needed.push(text(d.val)?),
                DT_RPATH => info.rpath.extend(split_path(&text(d.val)?)),
                DT_RUNPATH => info.runpath.extend(split_path(&text(d.val)?)),
                DT_SONAME => info.soname = Some(text(d.val)?),
                _ => {}
            }
        }
        Ok(info)
    }

    /// A shared object (`ET_DYN` without an interpreter).
    pub fn is_library(&self) -> bool {
        self.e_type == ET_DYN && self.interpreter.is_none()
    }

    /// The file name of the interpreter (`ld-linux-x86-64.so.2`): the soname of the loader it needs.
    pub fn loader_name(&self) -> Option<String> {
        let interp = self.interpreter.as_ref()?;
        Some(Path::new(interp).file_name()?.to_string_lossy().into_owned())
    }

    /// The object's own run path as the loader uses it for the object's needs: `DT_RUNPATH` when present (then
    /// `DT_RPATH` is ignored), else `DT_RPATH`; as written.
    pub fn own_run_path(&self) -> &[String] {
        if self.runpath.is_empty() { &self.rpath } else { &self.runpath }
    }

    /// [`Self::own_run_path`] with tokens expanded.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        self.own_run_path().iter().map(|e| expand(e, &self.path, self.class, self.machine)).collect()
    }

    /// Whether any run-path entry is relative to the object (`$ORIGIN`).
    pub fn uses_origin(&self) -> bool {
        self.rpath.iter().chain(&self.runpath).any(|e| e.contains("ORIGIN"))
    }

    /// Whether `other` can satisfy this object's needs (same class and machine).
    pub fn compatible(&self, other: &DynamicInfo) -> bool {
        self.class == other.class && self.machine == other.machine
    }
}

fn split_path(s: &str) -> Vec<String> {
    s.split(':').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

/// Expands `$ORIGIN`/`${ORIGIN}`, `$LIB` and `$PLATFORM` in a run-path entry of the object at `object`, as glibc
/// does, and normalises the result lexically.
pub fn expand(entry: &str, object: &Path, class: Class, machine: u16) -> PathBuf {
    let origin = object.parent().unwrap_or(Path::new("/")).to_string_lossy().into_owned();
    let lib = class.lib_token();
    let plat = platform(class, machine);
    let s = entry
        .replace("${ORIGIN}", &origin)
        .replace("$ORIGIN", &origin)
        .replace("${LIB}", lib)
        .replace("$LIB", lib)
        .replace("${PLATFORM}", plat)
        .replace("$PLATFORM", plat);
    normalize(Path::new(&s))
}

/// Reads `path` and returns its facts when it is an ELF file of this class and machine.
pub fn read_matching(path: &Path, class: Class, machine: u16) -> Option<DynamicInfo> {
    if !path.is_file() {
        return None;
    }
    DynamicInfo::read(path).ok().flatten().filter(|f| f.class == class && f.machine == machine)
}

/// What the bundle analysis should look at besides the program's `DT_NEEDED` graph.
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// Sonames the program loads without naming them (`dlopen`), treated as its needs.
    pub extra_needs: Vec<String>,
    /// Also read every other ELF object of the application directory (plugins, helper executables) when the program
    /// is a bundle, and report their needs as [`Extra`]s.
    pub scan_extras: bool,
}

/// Another ELF object of the application (a plugin, a helper executable) that the program's `DT_NEEDED` graph does
/// not reach, with what it needs from outside the bundle.
#[derive(Debug, Clone)]
pub struct Extra {
    pub object: DynamicInfo,
    /// Needs nothing in the bundle provides.
    pub external: BTreeSet<(Class, String)>,
}

/// The needs of a program and of the libraries bundled with it.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub program: DynamicInfo,
    /// The application directory: the program's directory, or its parent when that is a `bin`-style directory.
    pub root: PathBuf,
    /// The program and every bundled library its `DT_NEEDED` graph reaches, program first.
    pub objects: Vec<DynamicInfo>,
    /// Directories of the application that provided libraries, in the order they were searched.
    pub dirs: Vec<PathBuf>,
    /// Soname → the bundled file providing it.
    pub provided: BTreeMap<String, PathBuf>,
    /// Needs nothing in the bundle provides → the objects that need them; the program's loader is among them.
    pub external: BTreeMap<(Class, String), BTreeSet<PathBuf>>,
    /// Other objects of the application and their own outside needs (only with [`BundleOptions::scan_extras`]).
    pub extras: Vec<Extra>,
    /// Whether some object's run path uses `$ORIGIN`.
    pub uses_origin: bool,
}

impl Bundle {
    /// An application bundle: it ships libraries of its own or finds them relative to itself, so it may also find
    /// data relative to itself.
    pub fn is_bundle(&self) -> bool {
        self.uses_origin || !self.provided.is_empty()
    }

    /// The objects of the bundle (program and bundled libraries) that need something from outside it.
    pub fn objects_with_outside_needs(&self) -> impl Iterator<Item = &DynamicInfo> {
        self.objects.iter().filter(|o| self.external.values().any(|by| by.contains(&o.path)))
    }
}

/// The most objects a bundle scan reads (a runaway directory must not make a start take minutes).
const MAX_SCAN_ENTRIES: usize = 50_000;

/// The application directory of an executable: its directory, or that directory's parent when it is named `bin`,
/// `sbin` or `libexec` (the layout `app/bin/exe`, `app/lib/…`).
pub fn app_root(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("/"));
    match (dir.file_name().and_then(|n| n.to_str()), dir.parent()) {
        (Some("bin" | "sbin" | "libexec"), Some(up)) if up != Path::new("/") => up.to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// The library directories an application directory conventionally ships (what its launcher would put on
/// `LD_LIBRARY_PATH`): beside the executable, and `lib*/` beside it or beside its `bin/`.
fn conventional_dirs(exe: &Path) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else { return Vec::new() };
    let mut bases = vec![dir.to_path_buf()];
    if dir.file_name().is_some_and(|n| n == "bin")
        && let Some(up) = dir.parent()
    {
        bases.push(up.to_path_buf());
    }
    let mut out = Vec::new();
    for b in bases {
        if is_system_dir(&b) || b == Path::new("/usr") || b == Path::new("/") || b.starts_with("/usr/bin") {
            continue;
        }
        for sub in ["", "lib", "lib64", "lib32"] {
            let d = if sub.is_empty() { b.clone() } else { b.join(sub) };
            if d.is_dir() && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

struct Walker {
    /// The executable's path (it does not inherit its own `DT_RPATH` twice).
    program: PathBuf,
    /// The executable's `DT_RPATH` (expanded), which objects without `DT_RUNPATH` inherit.
    exe_rpath: Vec<PathBuf>,
    conventional: Vec<PathBuf>,
    provided: BTreeMap<(Class, String), PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Walker {
    /// Where the loader would find `name` for `obj` inside the application (system directories excluded): its
    /// own run path (or, without `DT_RUNPATH`, its `DT_RPATH` and the executable's), then the application's
    /// conventional library directories. A soname already provided is reused, as the loader reuses a loaded object.
    fn find(&mut self, obj: &DynamicInfo, name: &str) -> Option<PathBuf> {
        if let Some(p) = self.provided.get(&(obj.class, name.to_owned())) {
            return Some(p.clone());
        }
        let mut dirs = obj.search_dirs();
        if obj.runpath.is_empty() && obj.path != self.program {
            dirs.extend(self.exe_rpath.iter().cloned());
        }
        dirs.extend(self.conventional.iter().cloned());
        for d in dirs.into_iter().filter(|d| !is_system_dir(d)) {
            let candidate = d.join(name);
            if read_matching(&candidate, obj.class, obj.machine).is_some() {
                if !self.dirs.contains(&d) {
                    self.dirs.push(d);
                }
                self.provided.insert((obj.class, name.to_owned()), candidate.clone());
                return Some(candidate);
            }
        }
        None
    }
}

/// Analyses `program` (an ELF executable): walks the `DT_NEEDED` graph through the libraries bundled with it and
/// reports what must come from elsewhere. With [`BundleOptions::scan_extras`] the application directory's other ELF
/// objects are read too.
pub fn analyse(program: &Path, options: &BundleOptions) -> Result<Bundle, ReadError> {
    let info = DynamicInfo::read(program)?.ok_or_else(|| ReadError::Malformed {
        path: program.to_owned(),
        reason: Malformed::Invalid("not an ELF file"),
    })?;
    let exe_rpath = if info.runpath.is_empty() {
        info.rpath.iter().map(|e| expand(e, &info.path, info.class, info.machine)).collect()
    } else {
        Vec::new()
    };
    let mut walker = Walker {
        program: info.path.clone(),
        exe_rpath,
        conventional: conventional_dirs(&info.path),
        provided: BTreeMap::new(),
        dirs: Vec::new(),
    };
    let mut objects: Vec<DynamicInfo> = Vec::new();
    let mut external: BTreeMap<(Class, String), BTreeSet<PathBuf>> = BTreeMap::new();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut uses_origin = false;
    let mut first = info.clone();
    first.needed.extend(options.extra_needs.iter().cloned());
    let mut queue: VecDeque<DynamicInfo> = VecDeque::from([first]);
    while let Some(obj) = queue.pop_front() {
        if !seen.insert(obj.path.clone()) {
            continue;
        }
        uses_origin |= obj.uses_origin();
        for name in &obj.needed {
            if name.contains('/') {
                // A NEEDED with a slash is a path the loader opens as it is.
                continue;
            }
            match walker.find(&obj, name) {
                Some(p) => {
                    if !seen.contains(&p)
                        && let Some(lib) = DynamicInfo::read(&p)?
                    {
                        queue.push_back(lib);
                    }
                }
                None => {
                    external.entry((obj.class, name.clone())).or_default().insert(obj.path.clone());
                }
            }
        }
        objects.push(obj);
    }
    if let Some(loader) = info.loader_name() {
        external.entry((info.class, loader)).or_default().insert(info.path.clone());
    }
    // The program itself was pushed with the extra needs; keep its facts as read.
    if let Some(o) = objects.first_mut() {
        *o = info.clone();
    }
    let root = app_root(&info.path);
    let mut bundle = Bundle {
        program: info,
        root,
        objects,
        dirs: Vec::new(),
        provided: BTreeMap::new(),
        external,
        extras: Vec::new(),
        uses_origin,
    };
    if options.scan_extras && bundle.is_bundle() {
        bundle.extras = scan_extras(&bundle, &mut walker)?;
    }
    bundle.dirs = walker.dirs;
    bundle.provided = walker.provided.into_iter().map(|((_, name), path)| (name, path)).collect();
    Ok(bundle)
}

/// Every ELF object under the application directory that the `DT_NEEDED` walk did not reach, with its outside
/// needs (after its own run path and the bundle's libraries).
fn scan_extras(bundle: &Bundle, walker: &mut Walker) -> Result<Vec<Extra>, ReadError> {
    let known: BTreeSet<&Path> = bundle.objects.iter().map(|o| o.path.as_path()).collect();
    let mut extras = Vec::new();
    let mut stack = vec![bundle.root.clone()];
    let mut entries = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut names: Vec<_> = rd.flatten().collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            entries += 1;
            if entries > MAX_SCAN_ENTRIES {
                return Ok(extras);
            }
            let Ok(kind) = e.file_type() else { continue };
            let path = e.path();
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if !kind.is_file() || known.contains(path.as_path()) {
                continue;
            }
            let Ok(Some(obj)) = DynamicInfo::read(&path) else { continue };
            if !obj.dynamic {
                continue;
            }
            let mut external = BTreeSet::new();
            for name in obj.needed.iter().filter(|n| !n.contains('/')) {
                if walker.find(&obj, name).is_none() {
                    external.insert((obj.class, name.clone()));
                }
            }
            if let Some(loader) = obj.loader_name() {
                external.insert((obj.class, loader));
            }
            extras.push(Extra { object: obj, external });
        }
    }
    Ok(extras)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expand_as_glibc_does() {
        let p = expand("$ORIGIN/../lib", Path::new("/opt/app/bin/app"), Class::Elf64, EM_X86_64);
        assert_eq!(p, PathBuf::from("/opt/app/lib"));
        assert_eq!(expand("${ORIGIN}", Path::new("/a/b"), Class::Elf64, EM_X86_64), PathBuf::from("/a"));
        assert_eq!(expand("/x/$LIB", Path::new("/a/b"), Class::Elf32, EM_386), PathBuf::from("/x/lib"));
        assert_eq!(expand("/x/$LIB", Path::new("/a/b"), Class::Elf64, EM_X86_64), PathBuf::from("/x/lib64"));
        assert_eq!(
            expand("/p/${PLATFORM}/", Path::new("/a/b"), Class::Elf32, EM_386),
            PathBuf::from("/p/i686")
        );
    }

    #[test]
    fn system_directories() {
        for d in
            ["/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/lib/i386-linux-gnu/", "/usr/lib/../lib32"]
        {
            assert!(is_system_dir(Path::new(d)), "{d}");
        }
        for d in
            ["/usr/lib/x86_64-linux-gnu/pulseaudio", "/opt/app/lib", "/usr/local/lib", "/usr/lib/chromium"]
        {
            assert!(!is_system_dir(Path::new(d)), "{d}");
        }
        assert_eq!(system_lib_dirs(Class::Elf32, EM_386)[0], "lib/i386-linux-gnu");
        assert_eq!(machine_for(Class::Elf32, EM_X86_64), EM_386);
    }

    #[test]
    fn app_roots() {
        assert_eq!(app_root(Path::new("/opt/app/bin/app")), PathBuf::from("/opt/app"));
        assert_eq!(app_root(Path::new("/opt/app/app")), PathBuf::from("/opt/app"));
        assert_eq!(app_root(Path::new("/bin/ls")), PathBuf::from("/bin"));
    }

    #[test]
    fn non_elf_is_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("script");
        std::fs::write(&f, b"#!/bin/sh\nexit 0\n").unwrap();
        assert!(DynamicInfo::read(&f).unwrap().is_none());
        assert_eq!(peek_class(&f), None);
        let g = dir.path().join("bad");
        std::fs::write(&g, b"\x7fELF\x02\x01\x01garbage").unwrap();
        let e = DynamicInfo::read(&g).unwrap_err().to_string();
        assert!(e.contains("bad"), "{e}");
        let missing = dir.path().join("missing");
        assert!(DynamicInfo::read(&missing).unwrap_err().to_string().contains("cannot open"));
    }
}
