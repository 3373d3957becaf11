//! What a program needs: the ELF facts of a binary (class, machine, interpreter, `DT_NEEDED`, `DT_RPATH`,
//! `DT_RUNPATH`, `DT_SONAME`) read through `patchelf-rs`, and the recursive needs analysis over the binary and the
//! libraries bundled with it (`$ORIGIN` run paths, the application directory's own `lib/`), after following a shell
//! script launcher to the ELF file it starts.
//!
//! The result is the set of sonames nothing in the bundle provides; `realise` turns those into store paths, and
//! `strategy` runs the program with them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use patchelf_rs::raw::{DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, EM_386, EM_X86_64};

/// The word size of an ELF file; libraries of one class never satisfy the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Class {
    Elf32,
    Elf64,
}

impl Class {
    /// The Debian architecture whose packages hold libraries of this class and machine.
    pub fn debian_arch(self, machine: u16) -> Option<&'static str> {
        match (self, machine) {
            (Class::Elf64, EM_X86_64) => Some("amd64"),
            (Class::Elf32, EM_386) => Some("i386"),
            (Class::Elf64, 183) => Some("arm64"),
            _ => None,
        }
    }

    /// The library directories a Debian system (merged `/usr` or not) keeps libraries of this class in, most
    /// specific first.
    pub fn system_lib_dirs(self) -> &'static [&'static str] {
        match self {
            Class::Elf64 => {
                &["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib"]
            }
            Class::Elf32 => {
                &["lib/i386-linux-gnu", "usr/lib/i386-linux-gnu", "lib32", "usr/lib32", "lib", "usr/lib"]
            }
        }
    }
}

/// The dynamic-linking facts of one ELF file.
#[derive(Debug, Clone)]
pub struct ElfFacts {
    pub path: PathBuf,
    pub class: Class,
    pub machine: u16,
    /// `PT_INTERP`, when the file has one (executables and PIEs; not shared libraries).
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub soname: Option<String>,
    /// Whether the file has a dynamic segment at all (a static executable has none).
    pub dynamic: bool,
}

/// Reads the ELF facts of `path`; `Ok(None)` when it is not an ELF file.
pub fn read_elf(path: &Path) -> Result<Option<ElfFacts>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
    if len < 16 {
        return Ok(None);
    }
    // SAFETY: the map is read-only and private; a file truncated by someone else while we read it can at worst
    // raise SIGBUS, the same risk every ELF reader (including ld.so) takes.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
    if &map[0..4] != b"\x7fELF" {
        return Ok(None);
    }
    let elf = patchelf_rs::Elf::parse(&map).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let class = if elf.fmt.is64 { Class::Elf64 } else { Class::Elf32 };
    let interpreter = elf.interp().ok().map(|b| String::from_utf8_lossy(b).into_owned());
    let mut facts = ElfFacts {
        path: path.to_path_buf(),
        class,
        machine: elf.ehdr.e_machine,
        interpreter,
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
        soname: None,
        dynamic: elf.dynamic.is_some(),
    };
    let Some(dynamic) = &elf.dynamic else { return Ok(Some(facts)) };
    let strtab = elf.dynstr().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let text = |off: u64| -> Result<String> {
        let s =
            patchelf_rs::elf::str_at(strtab, off).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(String::from_utf8_lossy(s).into_owned())
    };
    for d in &dynamic.entries {
        match d.tag {
            DT_NEEDED => facts.needed.push(text(d.val)?),
            DT_RPATH => facts.rpath.extend(split_path(&text(d.val)?)),
            DT_RUNPATH => facts.runpath.extend(split_path(&text(d.val)?)),
            DT_SONAME => facts.soname = Some(text(d.val)?),
            _ => {}
        }
    }
    Ok(Some(facts))
}

fn split_path(s: &str) -> Vec<String> {
    s.split(':').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

/// Expands `$ORIGIN`/`${ORIGIN}` (and `$LIB`, `$PLATFORM` as glibc does on x86) in a run-path entry of the object
/// at `object`.
pub fn expand_origin(entry: &str, object: &Path, class: Class) -> PathBuf {
    let origin = object.parent().unwrap_or(Path::new("/")).to_string_lossy().into_owned();
    let lib = match class {
        Class::Elf64 => "lib64",
        Class::Elf32 => "lib",
    };
    let platform = match class {
        Class::Elf64 => "x86_64",
        Class::Elf32 => "i686",
    };
    let s = entry
        .replace("${ORIGIN}", &origin)
        .replace("$ORIGIN", &origin)
        .replace("${LIB}", lib)
        .replace("$LIB", lib)
        .replace("${PLATFORM}", platform)
        .replace("$PLATFORM", platform);
    PathBuf::from(s)
}

/// A shell-script launcher that was followed to the ELF file it starts.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `#!` interpreter (e.g. `/bin/sh`).
    pub interpreter: String,
}

/// The needs of one program.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The ELF executable (after following a launcher script).
    pub program: ElfFacts,
    pub launcher: Option<Launcher>,
    /// Directories of the application that hold its own libraries, searched before any package.
    pub bundle_dirs: Vec<PathBuf>,
    /// Soname → the bundled file that provides it.
    pub bundled: BTreeMap<String, PathBuf>,
    /// Sonames that nothing in the bundle provides, with the class they are needed in; the loader's own name is
    /// among them.
    pub external: BTreeSet<(Class, String)>,
    /// Which objects need each external soname (for messages).
    pub needed_by: BTreeMap<String, BTreeSet<PathBuf>>,
    /// Whether any object uses `$ORIGIN`, or a bundle directory holds libraries: the program is an application
    /// bundle that may also find data relative to itself.
    pub is_bundle: bool,
}

impl Analysis {
    /// The soname of the program's loader (`ld-linux-x86-64.so.2`), taken from its interpreter.
    pub fn loader_name(&self) -> Option<String> {
        let interp = self.program.interpreter.as_ref()?;
        Some(Path::new(interp).file_name()?.to_string_lossy().into_owned())
    }
}

/// The most a launcher chain is followed (a script starting a script starting the ELF file).
const MAX_SCRIPT_DEPTH: usize = 4;

/// Analyses `target` (an ELF executable or a launcher script): follows the script, then walks the `DT_NEEDED`
/// graph through bundled libraries. Sonames in `extra` (the dlopen list) are added as needs of the program.
pub fn analyse(target: &Path, extra: &[String]) -> Result<Analysis> {
    let target =
        std::path::absolute(target).with_context(|| format!("cannot resolve {}", target.display()))?;
    if !target.is_file() {
        bail!("cannot analyse {}: no such file", target.display());
    }
    let (elf_path, launcher) = follow_launchers(&target)?;
    let Some(program) = read_elf(&elf_path)? else {
        bail!("cannot analyse {}: not an ELF file or a shell script that starts one", target.display());
    };
    if !program.dynamic || program.interpreter.is_none() {
        bail!(
            "{} is statically linked (no interpreter): it needs no libraries and runs as it is",
            elf_path.display()
        );
    }
    let mut bundle_dirs = app_lib_dirs(&elf_path);
    let mut is_bundle = false;
    let mut bundled: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut external = BTreeSet::new();
    let mut needed_by: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let exe_rpath: Vec<PathBuf> = if program.runpath.is_empty() {
        program.rpath.iter().map(|e| expand_origin(e, &program.path, program.class)).collect()
    } else {
        Vec::new()
    };
    let mut queue: VecDeque<(ElfFacts, Vec<String>)> = VecDeque::new();
    let mut first = program.clone();
    first.needed.extend(extra.iter().cloned());
    queue.push_back((first, Vec::new()));
    while let Some((obj, _)) = queue.pop_front() {
        if !seen.insert(obj.path.clone()) {
            continue;
        }
        let own: Vec<String> = if obj.runpath.is_empty() { obj.rpath.clone() } else { obj.runpath.clone() };
        if own.iter().any(|e| e.contains("ORIGIN")) {
            is_bundle = true;
        }
        let mut dirs: Vec<PathBuf> = own.iter().map(|e| expand_origin(e, &obj.path, obj.class)).collect();
        if obj.runpath.is_empty() {
            dirs.extend(exe_rpath.iter().cloned());
        }
        for d in &dirs {
            if d.is_dir() && !is_system_dir(d) && !bundle_dirs.contains(d) {
                bundle_dirs.push(d.clone());
            }
        }
        for name in &obj.needed {
            if name.contains('/') {
                // A NEEDED with a slash is a path, used as is by the loader.
                continue;
            }
            let found = dirs
                .iter()
                .filter(|d| !is_system_dir(d))
                .chain(bundle_dirs.iter())
                .map(|d| d.join(name))
                .find(|p| matches_class(p, obj.class, obj.machine));
            match found {
                Some(p) => {
                    is_bundle = true;
                    bundled.entry(name.clone()).or_insert_with(|| p.clone());
                    if let Some(lib) = read_elf(&p)? {
                        queue.push_back((lib, Vec::new()));
                    }
                }
                None => {
                    external.insert((obj.class, name.clone()));
                    needed_by.entry(name.clone()).or_default().insert(obj.path.clone());
                }
            }
        }
    }
    bundle_dirs.retain(|d| bundled.values().any(|p| p.parent() == Some(d.as_path())));
    if let Some(loader) = program.interpreter.as_ref().and_then(|i| Path::new(i).file_name()) {
        external.insert((program.class, loader.to_string_lossy().into_owned()));
    }
    Ok(Analysis { program, launcher, bundle_dirs, bundled, external, needed_by, is_bundle })
}

/// Whether `p` is an ELF file of this class and machine.
pub fn matches_class(p: &Path, class: Class, machine: u16) -> bool {
    p.is_file() && matches!(read_elf(p), Ok(Some(f)) if f.class == class && f.machine == machine)
}

fn is_system_dir(d: &Path) -> bool {
    let s = d.to_string_lossy();
    let rel = s.trim_start_matches('/');
    Class::Elf64.system_lib_dirs().contains(&rel) || Class::Elf32.system_lib_dirs().contains(&rel)
}

/// The library directories an application directory conventionally ships: beside the executable, and `lib*/`
/// beside it or beside its `bin/`.
fn app_lib_dirs(exe: &Path) -> Vec<PathBuf> {
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

/// Follows `#!` scripts to the ELF file they start: the first word of the script that names an existing ELF
/// executable relative to the script's directory (after stripping a leading `$VAR/` or `${VAR}/`, the usual
/// `HERE=$(dirname "$0")` idiom), preferring one after `exec`.
fn follow_launchers(target: &Path) -> Result<(PathBuf, Option<Launcher>)> {
    let mut current = target.to_path_buf();
    let mut launcher = None;
    for _ in 0..MAX_SCRIPT_DEPTH {
        let head = read_head(&current)?;
        if !head.starts_with(b"#!") {
            return Ok((current, launcher));
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let interpreter = text.lines().next().unwrap_or("").trim_start_matches("#!").trim().to_owned();
        let dir = current.parent().unwrap_or(Path::new("/")).to_path_buf();
        let Some(next) = script_target(&text, &dir) else {
            bail!(
                "{} is a script ({}) that starts no ELF file found beside it; run the program it starts instead",
                current.display(),
                interpreter
            );
        };
        if launcher.is_none() {
            launcher = Some(Launcher { interpreter });
        }
        current = next;
    }
    bail!("{}: launcher scripts nest more than {MAX_SCRIPT_DEPTH} deep", target.display())
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = Vec::new();
    f.by_ref()
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(buf)
}

fn script_target(text: &str, dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(bool, PathBuf)> = None;
    for line in text.lines().skip(1) {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || "\"'`;()=|&<>".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        for (i, w) in words.iter().enumerate() {
            let after_exec = i > 0 && words[i - 1] == "exec";
            let Some(candidate) = candidate_path(w, dir) else { continue };
            let is_exec = candidate.is_file()
                && (read_head(&candidate).is_ok_and(|h| h.starts_with(b"\x7fELF") || h.starts_with(b"#!")));
            if !is_exec || candidate == dir.join(".") {
                continue;
            }
            match &best {
                Some((true, _)) => {}
                Some((false, _)) if !after_exec => {}
                _ => best = Some((after_exec, candidate)),
            }
        }
    }
    best.map(|(_, p)| p)
}

fn candidate_path(word: &str, dir: &Path) -> Option<PathBuf> {
    let mut rest = word;
    if let Some(r) = rest.strip_prefix("${") {
        rest = r.split_once('}')?.1;
    } else if let Some(r) = rest.strip_prefix('$') {
        let end = r.find('/')?;
        rest = &r[end..];
    }
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() || rest.starts_with('-') || rest.contains('$') || rest.contains('*') {
        return None;
    }
    let p = if word.starts_with('/') { PathBuf::from(word) } else { dir.join(rest) };
    // Only files inside the launcher's own tree: `/bin/sh`, `/usr/bin/env` are the host's business.
    if !p.starts_with(dir.parent().unwrap_or(dir)) {
        return None;
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_expansion() {
        let p = expand_origin("$ORIGIN/../lib:${ORIGIN}", Path::new("/opt/app/bin/app"), Class::Elf64);
        assert_eq!(p, PathBuf::from("/opt/app/bin/../lib:/opt/app/bin"));
        assert_eq!(expand_origin("/x/$LIB", Path::new("/a/b"), Class::Elf32), PathBuf::from("/x/lib"));
    }

    #[test]
    fn script_words() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/app"), b"\x7fELF....").unwrap();
        let text = "#!/bin/sh\nHERE=\"$(dirname \"$0\")\"\nexport LD_LIBRARY_PATH=\"$HERE/lib\"\nexec \"$HERE/bin/app\" \"$@\"\n";
        assert_eq!(script_target(text, dir.path()), Some(dir.path().join("bin/app")));
        assert_eq!(script_target("#!/bin/sh\nexec /bin/true\n", dir.path()), None);
    }
}
