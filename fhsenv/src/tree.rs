//! The env builder: merges package trees into one FHS tree (a symlink farm) with `/etc` files and an `ld.so.cache`.
//!
//! Layout of a built env (merged-usr, like buildFHSEnv): `usr/{bin,sbin,share,include,libexec}`, `usr/lib` holding
//! 64-bit libraries (`usr/lib64` holds only the loader link), `usr/lib32` holding 32-bit ones, top-level `bin`, `sbin`, `lib*`
//! links, `etc/` with package files plus the generated `ld.so.cache`, `ld.so.cache.overlay`, `ld.so.conf` and
//! `profile`, optional `opt/`, and `fhsenv.toml` recording the spec it was built from. Libraries are placed by their
//! own ELF class, whatever directory the package put them in (`lib/`, `lib64/`, `lib/x86_64-linux-gnu/`,
//! `lib/i386-linux-gnu/`, `lib32/`). The first package providing a path wins; every loser is reported. The tree is
//! built beside the destination and renamed into place, so a failed build leaves the previous env intact.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use patchelf_rs::dynamic::{Class, DynamicInfo, peek_class};
use patchelf_rs::raw::{EM_386, EM_X86_64, ET_DYN};

use crate::error::{Error, Result};
use crate::ldcache::{self, CacheEntry};
use crate::profile;
use crate::spec::EnvSpec;

/// Name of the metadata file at the top of a built env.
pub const METADATA: &str = "fhsenv.toml";

/// Version of the tree's layout, recorded in its metadata; a tree of another version is rebuilt on demand.
/// 2: `usr/lib64` is a directory (holding the loader link), the multiarch directories are empty mount points, and
/// no directory the host has is folded, so the tree can be laid over the host's `/usr` in overlay mode without
/// hiding host files.
pub const FORMAT_VERSION: u32 = 2;

/// A path two packages both provide; the first one listed is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Path inside the env (`usr/lib/libfoo.so.1`).
    pub path: PathBuf,
    /// The file that is used.
    pub kept: PathBuf,
    /// The file that is not.
    pub dropped: PathBuf,
}

/// What a build did.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// Symbolic links written (a directory provided whole by one package is one link).
    pub links: usize,
    /// Entries in `etc/ld.so.cache`.
    pub cache_entries: usize,
    /// Paths provided by more than one package.
    pub conflicts: Vec<Conflict>,
    /// Top-level package entries outside the FHS directories fhsenv merges (e.g. `var/`).
    pub ignored: Vec<PathBuf>,
}

/// The metadata stored in a built env: the spec (with absolute package paths) and what it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Format version of this file.
    pub version: u32,
    /// The spec, package paths canonical.
    pub spec: EnvSpec,
    /// Modification times (ns) of the package directories, in `all_packages` order, to detect stale builds.
    pub stamps: Vec<i128>,
}

/// A built env directory.
#[derive(Debug, Clone)]
pub struct BuiltEnv {
    /// Absolute path of the env tree.
    pub root: PathBuf,
    /// What it was built from.
    pub metadata: Metadata,
}

impl BuiltEnv {
    /// Opens a built env (a directory holding `fhsenv.toml`).
    pub fn open(dir: &Path) -> Result<BuiltEnv> {
        let meta_path = dir.join(METADATA);
        let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::NotAnEnv {
            path: dir.into(),
            reason: format!("cannot read {METADATA}: {e}"),
        })?;
        let metadata: Metadata = toml::from_str(&text).map_err(|e| Error::NotAnEnv {
            path: dir.into(),
            reason: format!("{METADATA}: {}", e.message().trim()),
        })?;
        let root = std::path::absolute(dir).map_err(Error::io("resolve", dir))?;
        Ok(BuiltEnv { root, metadata })
    }

    /// The spec this env was built from.
    pub fn spec(&self) -> &EnvSpec {
        &self.metadata.spec
    }

    /// True if and only if `spec` and the package directories' mtimes match what this env was built from.
    pub fn is_current(&self, spec: &EnvSpec) -> bool {
        let Ok(canonical) = canonical_spec(spec) else { return false };
        self.metadata.version == FORMAT_VERSION
            && canonical == self.metadata.spec
            && stamps(&canonical).ok().as_ref() == Some(&self.metadata.stamps)
    }
}

fn canonical_spec(spec: &EnvSpec) -> Result<EnvSpec> {
    let mut spec = spec.clone();
    let canon = |p: &mut PathBuf| -> Result<()> {
        *p = std::fs::canonicalize(&*p).map_err(|e| Error::Package {
            path: p.clone(),
            reason: format!("cannot open package directory: {e}"),
        })?;
        if !p.is_dir() {
            return Err(Error::Package { path: p.clone(), reason: "not a directory".into() });
        }
        Ok(())
    };
    spec.packages.iter_mut().try_for_each(canon)?;
    spec.multi_packages.iter_mut().try_for_each(canon)?;
    Ok(spec)
}

fn stamps(spec: &EnvSpec) -> Result<Vec<i128>> {
    spec.all_packages()
        .map(|(p, _)| {
            let m = std::fs::metadata(p).map_err(Error::io("stat package directory", p))?;
            Ok(i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()))
        })
        .collect()
}

/// Where a package path goes in the env.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// `usr/<path>` (bin, sbin, share, include, libexec, games).
    Usr(PathBuf),
    /// A library directory; `rest` is below it, `wants32` when the package's directory says 32-bit.
    Lib {
        rest: PathBuf,
        wants32: bool,
    },
    /// Top-level `etc/` or `opt/` (`top` is the directory name).
    Top(&'static str, PathBuf),
    Ignore,
}

fn place(rel: &Path) -> Place {
    let parts: Vec<&OsStr> =
        rel.components().filter_map(|c| if let Component::Normal(s) = c { Some(s) } else { None }).collect();
    let (usr, parts) = match parts.split_first() {
        Some((first, rest)) if *first == "usr" => (true, rest),
        _ => (false, &parts[..]),
    };
    let Some((first, rest)) = parts.split_first() else { return Place::Ignore };
    let join = |items: &[&OsStr]| items.iter().collect::<PathBuf>();
    match first.to_str().unwrap_or("") {
        "bin" | "sbin" | "share" | "include" | "libexec" | "games" if !rest.is_empty() => {
            Place::Usr(join(parts))
        }
        "lib" | "lib64" | "lib32" if !rest.is_empty() => {
            let mut wants32 = *first == "lib32";
            let mut rest = rest;
            if let Some((triplet, below)) = rest.split_first() {
                let marks32 = *triplet == "i386-linux-gnu" || (*first == "lib" && *triplet == "32");
                if (*triplet == "x86_64-linux-gnu" || marks32) && !below.is_empty() {
                    wants32 |= marks32;
                    rest = below;
                }
            }
            Place::Lib { rest: join(rest), wants32 }
        }
        "etc" if !usr && !rest.is_empty() => Place::Top("etc", join(rest)),
        "opt" if !usr && !rest.is_empty() => Place::Top("opt", join(rest)),
        _ => Place::Ignore,
    }
}

/// One file of the farm.
#[derive(Debug, Clone)]
struct Item {
    /// What the link points to.
    source: PathBuf,
    /// The package entry is itself a symlink (the loader cache keys such links by their own name).
    is_link: bool,
    elf: Option<DynamicInfo>,
    /// A relative link whose target another package provides (Debian's `usr/bin/gcc -> gcc-12`, `libz.so ->
    /// libz.so.1.2.13` in a `-dev` package): the target's path inside the package tree, so the env's link can
    /// point at the env's own entry for it instead of at the dangling link.
    relink: Option<PathBuf>,
}

/// Lib directory names inside `usr/`.
const LIB64: &str = "usr/lib";
const LIB32: &str = "usr/lib32";

#[derive(Default)]
struct Farm {
    items: BTreeMap<PathBuf, Item>,
    dirs: BTreeSet<PathBuf>,
    report: BuildReport,
    /// Number of entries of every package directory walked, to tell whether a farm directory shows all of one.
    source_entries: HashMap<PathBuf, usize>,
    /// Link `usr/share/{doc,man,info}` too.
    docs: bool,
}

/// Documentation directories, linked only when the spec asks for `docs`.
const DOC_DIRS: [&str; 6] =
    ["usr/share/doc", "usr/share/man", "usr/share/info", "share/doc", "share/man", "share/info"];

impl Farm {
    fn insert(&mut self, dest: PathBuf, item: Item) {
        if let Some(existing) = self.items.get(&dest) {
            if existing.source != item.source {
                let (kept, dropped) = (existing.source.clone(), item.source);
                self.report.conflicts.push(Conflict { path: dest, kept, dropped });
            }
            return;
        }
        if self.dirs.contains(&dest) {
            self.report.conflicts.push(Conflict { path: dest.clone(), kept: dest, dropped: item.source });
            return;
        }
        for ancestor in dest.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() || self.dirs.contains(ancestor) {
                break;
            }
            if let Some(file) = self.items.get(ancestor) {
                let kept = file.source.clone();
                self.report.conflicts.push(Conflict { path: dest, kept, dropped: item.source });
                return;
            }
        }
        for ancestor in dest.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() || !self.dirs.insert(ancestor.to_path_buf()) {
                break;
            }
        }
        self.items.insert(dest, item);
    }

    fn add_package(&mut self, root: &Path) -> Result<()> {
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .map_err(Error::io("read package directory", &dir))?
                .collect::<std::io::Result<_>>()
                .map_err(Error::io("read package directory", &dir))?;
            entries.sort_by_key(|e| e.file_name());
            self.source_entries.insert(dir.clone(), entries.len());
            // Push in reverse so the walk visits names in order (deterministic conflict reports).
            for entry in entries.into_iter().rev() {
                let rel = rel.join(entry.file_name());
                let kind = entry.file_type().map_err(Error::io("stat", entry.path()))?;
                if kind.is_dir() {
                    if !self.docs && DOC_DIRS.iter().any(|d| rel == Path::new(d)) {
                        continue;
                    }
                    let top_level = rel.components().count() == 1;
                    if !top_level || entry.file_name() == "usr" || place(&rel.join("x")) != Place::Ignore {
                        stack.push(rel);
                    } else {
                        self.report.ignored.push(root.join(&rel));
                    }
                    continue;
                }
                let mut source = root.join(&rel);
                if kind.is_symlink()
                    && let Some(target) = absolute_link_in_package(root, &source)
                {
                    source = target;
                }
                let relink = if kind.is_symlink() { dangling_relative_target(root, &rel) } else { None };
                match place(&rel) {
                    Place::Usr(path) => self.insert(
                        Path::new("usr").join(path),
                        Item { source, is_link: kind.is_symlink(), elf: None, relink: relink.clone() },
                    ),
                    Place::Top(top, path) => self.insert(
                        Path::new(top).join(path),
                        Item { source, is_link: kind.is_symlink(), elf: None, relink: relink.clone() },
                    ),
                    Place::Lib { rest, wants32 } => {
                        let name = rest.file_name().and_then(OsStr::to_str).unwrap_or("");
                        let cacheable = is_cache_candidate(&rest, name);
                        let (class, info) = if cacheable {
                            let info = DynamicInfo::read(&source).ok().flatten();
                            (info.as_ref().map(|i| i.class), info)
                        } else if rest.components().count() == 1 {
                            (peek_class(&source), None)
                        } else {
                            // Deeper files (a runtime's modules, gcc's multilib objects) keep the directory's
                            // word for their architecture: opening each one would cost a read per file.
                            (None, None)
                        };
                        let dir = match class {
                            Some(Class::Elf64) => LIB64,
                            Some(Class::Elf32) => LIB32,
                            None if wants32 => LIB32,
                            None => LIB64,
                        };
                        self.insert(
                            Path::new(dir).join(rest),
                            Item { source, is_link: kind.is_symlink(), elf: info, relink: relink.clone() },
                        );
                    }
                    Place::Ignore => {
                        if rel.components().count() == 1 {
                            self.report.ignored.push(source);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds the soname links `ldconfig` would create (`libfoo.so.1` for a file named `libfoo.so.1.2.3`).
    fn add_soname_links(&mut self) {
        let mut extra = Vec::new();
        for (dest, item) in &self.items {
            let (Some(parent), Some(info)) = (dest.parent(), item.elf.as_ref()) else { continue };
            let Some(soname) = info.soname.as_deref() else { continue };
            if item.is_link || dest.file_name() == Some(OsStr::new(soname)) || soname.contains('/') {
                continue;
            }
            let link = parent.join(soname);
            if !self.items.contains_key(&link) {
                extra.push((link, item.clone()));
            }
        }
        for (link, item) in extra {
            self.insert(link, item);
        }
    }

    /// Farm directories that can be one link to a package directory, as buildEnv does: everything below comes from
    /// that one package directory under the same names, and it shows all of it. A 200-package env then needs a
    /// few thousand links instead of tens of thousands. `usr/*` and the top-level directories stay real, since
    /// fhsenv writes into them and mounts them.
    /// `host_root` is the host's `/` (see [`shadows_host_dir`]).
    /// The env path of a package-relative path, if the env has an entry there.
    fn env_path(&self, package_rel: &Path) -> Option<PathBuf> {
        let candidates = match place(package_rel) {
            Place::Usr(path) => vec![Path::new("usr").join(path)],
            Place::Top(top, path) => vec![Path::new(top).join(path)],
            Place::Lib { rest, wants32 } if wants32 => {
                vec![Path::new(LIB32).join(&rest), Path::new(LIB64).join(rest)]
            }
            Place::Lib { rest, .. } => vec![Path::new(LIB64).join(&rest), Path::new(LIB32).join(rest)],
            Place::Ignore => Vec::new(),
        };
        candidates.into_iter().find(|c| self.items.contains_key(c) || self.dirs.contains(c))
    }

    fn folded_dirs(&self, host_root: &Path) -> BTreeMap<PathBuf, PathBuf> {
        // For each farm directory: the package directory all its entries agree on, or None once two disagree.
        let mut votes: HashMap<PathBuf, Option<PathBuf>> = HashMap::new();
        let mut children: HashMap<PathBuf, usize> = HashMap::new();
        fn vote(
            votes: &mut HashMap<PathBuf, Option<PathBuf>>,
            children: &mut HashMap<PathBuf, usize>,
            dest: &Path,
            source: Option<&Path>,
        ) {
            let Some(parent) = dest.parent() else { return };
            let agreed = source
                .filter(|s| s.file_name() == dest.file_name())
                .and_then(Path::parent)
                .map(Path::to_path_buf);
            *children.entry(parent.to_path_buf()).or_default() += 1;
            votes
                .entry(parent.to_path_buf())
                .and_modify(|v| {
                    if *v != agreed {
                        *v = None;
                    }
                })
                .or_insert(agreed);
        }
        for (dest, item) in &self.items {
            // A link to be re-pointed inside the env keeps its directory a real one.
            let source = if item.relink.is_some() { None } else { Some(item.source.as_path()) };
            vote(&mut votes, &mut children, dest, source);
        }
        // Deepest directories first, so a directory's own vote is known before its parent counts it.
        let mut dirs: Vec<&PathBuf> = self.dirs.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        let mut folded = BTreeMap::new();
        for dir in dirs {
            let source = votes.get(dir).cloned().flatten().filter(|s| {
                let keep_real = dir.components().count() == 1
                    || (dir.starts_with("usr") && dir.components().count() == 2)
                    || shadows_host_dir(host_root, dir);
                !keep_real && self.source_entries.get(s) == children.get(dir)
            });
            vote(&mut votes, &mut children, dir, source.as_deref());
            if let Some(source) = source {
                folded.insert(dir.clone(), source);
            }
        }
        // Only the outermost folded directory becomes a link.
        let outer: Vec<PathBuf> = folded
            .keys()
            .filter(|d| !d.ancestors().skip(1).any(|a| folded.contains_key(a)))
            .cloned()
            .collect();
        outer
            .into_iter()
            .map(|d| {
                let s = folded[&d].clone();
                (d, s)
            })
            .collect()
    }

    fn cache_entries(&self) -> Vec<CacheEntry> {
        let mut out = Vec::new();
        for (dest, item) in &self.items {
            let Some(info) = item.elf.as_ref().filter(|i| i.e_type == ET_DYN) else { continue };
            let Some(name) = dest.file_name().and_then(OsStr::to_str) else { continue };
            let parent = dest.parent().unwrap_or(Path::new(""));
            let (lib_dir, hwcaps) = match parent.strip_prefix(LIB64).or_else(|_| parent.strip_prefix(LIB32)) {
                Ok(sub) if sub.as_os_str().is_empty() => (parent, None),
                Ok(sub) => match sub.strip_prefix("glibc-hwcaps").ok().and_then(|h| h.to_str()) {
                    Some(h) if !h.is_empty() && !h.contains('/') => (parent, Some(h.to_owned())),
                    _ => continue,
                },
                Err(_) => continue,
            };
            let Some(flags) = cache_flags(info) else { continue };
            // A real file is listed under its soname (the link ldconfig would make), a link under its own name.
            let key = if item.is_link { name } else { info.soname.as_deref().unwrap_or(name) };
            if key.contains('/') {
                continue;
            }
            out.push(CacheEntry {
                key: key.to_owned(),
                path: format!("/{}/{key}", lib_dir.display()),
                flags,
                hwcaps,
            });
        }
        out
    }
}

/// Returns true if and only if the farm directory `dir` (under `usr/` or `opt/`) is a directory on this host too: as
/// one link it would hide the host's files below it when the env is laid over the host's `/usr` (overlay mode),
/// while a real directory merges with the host's.
fn shadows_host_dir(host_root: &Path, dir: &Path) -> bool {
    (dir.starts_with("usr") || dir.starts_with("opt")) && host_root.join(dir).is_dir()
}

/// The package-relative path a relative link `rel` of the package at `root` names, when that path does not exist
/// in the package (another package of the env provides it).
fn dangling_relative_target(root: &Path, rel: &Path) -> Option<PathBuf> {
    let link = root.join(rel);
    let target = std::fs::read_link(&link).ok()?;
    if target.is_absolute() || std::fs::metadata(&link).is_ok() {
        return None;
    }
    let resolved = normalize(&rel.parent().unwrap_or(Path::new("")).join(target));
    // `..` past the package's top is not a path inside the env either.
    (!resolved.as_os_str().is_empty() && !resolved.starts_with("..")).then_some(resolved)
}

/// Where a package's symlink with an absolute target points inside that same package, if it does.
///
/// Packages link by absolute paths meant for a real root (Debian's `libc6-i386` has `/lib/ld-linux.so.2 ->
/// /lib32/ld-linux.so.2`). In the farm that target names the env's own link, which may be this very entry: a loop.
/// Pointing at the package's own file keeps the meaning and breaks the loop; targets outside it stay as they are.
fn absolute_link_in_package(root: &Path, link: &Path) -> Option<PathBuf> {
    let mut current = link.to_path_buf();
    for _ in 0..16 {
        let target = std::fs::read_link(&current).ok()?;
        let next = if target.is_absolute() {
            root.join(target.strip_prefix("/").ok()?)
        } else if current == link {
            return None; // a relative link resolves the same way from the store
        } else {
            current.parent()?.join(target)
        };
        let next = normalize(&next);
        if !next.starts_with(root) {
            return None;
        }
        let meta = std::fs::symlink_metadata(&next).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(next);
        }
        current = next;
    }
    None
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
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

fn is_cache_candidate(rest: &Path, name: &str) -> bool {
    let depth = rest.components().count();
    let in_hwcaps = depth == 3 && rest.starts_with("glibc-hwcaps");
    (depth == 1 || in_hwcaps) && (name.starts_with("lib") || name.starts_with("ld-")) && name.contains(".so")
}

/// The cache flags of a library, `None` for machines the x86 loaders do not load.
fn cache_flags(info: &DynamicInfo) -> Option<i32> {
    match (info.class, info.machine) {
        (Class::Elf64, EM_X86_64) => Some(ldcache::FLAG_X8664_LIBC6),
        (Class::Elf32, EM_386) => {
            let libc6 = info.soname.as_deref() == Some("libc.so.6")
                || info.needed.iter().any(|n| n == "libc.so.6" || n == "ld-linux.so.2");
            Some(if libc6 { ldcache::FLAG_ELF_LIBC6 } else { ldcache::FLAG_ELF })
        }
        _ => None,
    }
}

/// Library directories of the host's graphics drivers (NixOS), added to the cache after the env's own libraries.
pub const OPENGL_DRIVER_DIRS: [&str; 2] = ["/run/opengl-driver/lib", "/run/opengl-driver-32/lib"];

fn host_driver_entries(dirs: &[&str]) -> Vec<CacheEntry> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut names: Vec<_> = entries.filter_map(|e| e.ok()).collect();
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_cache_candidate(Path::new(&name), &name) {
                continue;
            }
            let Some(info) = DynamicInfo::read(&entry.path()).ok().flatten().filter(|i| i.e_type == ET_DYN)
            else {
                continue;
            };
            let Some(flags) = cache_flags(&info) else { continue };
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            let key = if is_link { name.clone() } else { info.soname.clone().unwrap_or(name) };
            out.push(CacheEntry { key: key.clone(), path: format!("{dir}/{key}"), flags, hwcaps: None });
        }
    }
    out
}

/// Builds the env declared by `spec` into `out` (replacing a previous build there).
pub fn build(spec: &EnvSpec, out: &Path) -> Result<BuildReport> {
    let spec = canonical_spec(spec)?;
    let stamps = stamps(&spec)?;
    let mut farm = Farm { docs: spec.docs, ..Farm::default() };
    for (package, _) in spec.all_packages() {
        farm.add_package(package)?;
    }
    farm.add_soname_links();
    let mut cache = farm.cache_entries();
    cache.extend(host_driver_entries(&OPENGL_DRIVER_DIRS));

    let out = std::path::absolute(out).map_err(Error::io("resolve", out))?;
    let parent = out
        .parent()
        .ok_or_else(|| Error::Plan { path: out.clone(), reason: "no parent directory".into() })?;
    std::fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(Error::io("remove stale build", &tmp))?;
    }
    let (links, written) = match write_tree(&spec, &farm, &cache, &stamps, &tmp) {
        Ok(counts) => counts,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(err);
        }
    };
    replace_dir(&tmp, &out)?;
    let mut report = farm.report;
    report.links = links;
    report.cache_entries = written;
    tracing::debug!(links = report.links, conflicts = report.conflicts.len(), out = %out.display(), "built env");
    Ok(report)
}

fn write_tree(
    spec: &EnvSpec,
    farm: &Farm,
    cache: &[CacheEntry],
    stamps: &[i128],
    tmp: &Path,
) -> Result<(usize, usize)> {
    let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(Error::io("create directory", p));
    let symlink = |target: &Path, link: &Path| {
        std::os::unix::fs::symlink(target, link).map_err(Error::io("create link", link))
    };
    for dir in
        ["usr/bin", "usr/sbin", "usr/lib", "usr/lib32", "usr/share", "usr/include", "usr/libexec", "etc"]
    {
        mkdir(&tmp.join(dir))?;
    }
    let folded = farm.folded_dirs(Path::new("/"));
    let under_folded = |p: &Path| p.ancestors().any(|a| folded.contains_key(a));
    let mut links = 0;
    for dir in &farm.dirs {
        if !under_folded(dir) {
            mkdir(&tmp.join(dir))?;
        }
    }
    for (dir, source) in &folded {
        symlink(source, &tmp.join(dir))?;
        links += 1;
    }
    for (dest, item) in &farm.items {
        if !under_folded(dest) {
            match item.relink.as_deref().and_then(|t| farm.env_path(t)).filter(|t| t != dest) {
                // Relative, so it resolves the same inside the env and in the tree seen from outside.
                Some(target) => {
                    let up = dest.parent().map_or(0, |p| p.components().count());
                    let mut relative: PathBuf = std::iter::repeat_n("..", up).collect();
                    relative.push(target);
                    symlink(&relative, &tmp.join(dest))?
                }
                None => symlink(&item.source, &tmp.join(dest))?,
            }
            links += 1;
        }
    }
    // A directory holding only the loader's link (as on Debian), not a link to `lib`: in overlay mode it merges
    // with the host's `/usr/lib64`, where a link would hide the host's loader.
    mkdir(&tmp.join("usr/lib64"))?;
    if farm.items.contains_key(Path::new("usr/lib/ld-linux-x86-64.so.2")) {
        symlink(Path::new("../lib/ld-linux-x86-64.so.2"), &tmp.join("usr/lib64/ld-linux-x86-64.so.2"))?;
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("lib32", "usr/lib32"),
    ] {
        symlink(Path::new(target), &tmp.join(link))?;
    }
    // Paths compiled into Debian's libraries (a `DT_RUNPATH` of /usr/lib/x86_64-linux-gnu/pulseaudio, Mesa's
    // /usr/lib/x86_64-linux-gnu/dri) name the multiarch directories, whose contents the farm keeps one level up.
    // They are empty directories, on which the launcher mounts `usr/lib` and `usr/lib32` (see
    // `plan::MULTIARCH`): links would hide the host's multiarch directories when the tree is laid over the host's
    // `/usr` in overlay mode.
    for (dir, _) in crate::plan::MULTIARCH {
        let dir = dir.trim_start_matches('/');
        if !farm.dirs.contains(Path::new(dir)) && !farm.items.contains_key(Path::new(dir)) {
            mkdir(&tmp.join(dir))?;
        }
    }
    // 32-bit programs ask for /lib/ld-linux.so.2; /lib is the 64-bit directory.
    if farm.items.contains_key(Path::new("usr/lib32/ld-linux.so.2"))
        && !farm.items.contains_key(Path::new("usr/lib/ld-linux.so.2"))
    {
        symlink(Path::new("../lib32/ld-linux.so.2"), &tmp.join("usr/lib/ld-linux.so.2"))?;
    }
    let etc = tmp.join("etc");
    let generated = ["ld.so.cache", "ld.so.cache.overlay", "ld.so.conf", "profile", "mtab"];
    for name in generated {
        let path = etc.join(name);
        if path.symlink_metadata().is_ok() {
            std::fs::remove_file(&path).map_err(Error::io("replace package file", &path))?;
        }
    }
    symlink(Path::new("/proc/mounts"), &etc.join("mtab"))?;
    let written = ldcache::write(&etc.join("ld.so.cache"), cache, "fhskit")?;
    // Overlay mode keeps the host's /usr visible, so its libraries stay reachable after the env's own.
    let mut overlay = cache.to_vec();
    if let Ok(bytes) = std::fs::read("/etc/ld.so.cache") {
        overlay.extend(ldcache::decode(&bytes, Path::new("/etc/ld.so.cache")).unwrap_or_default());
    }
    ldcache::write(&etc.join("ld.so.cache.overlay"), &overlay, "fhskit")?;
    let conf = ["/usr/lib", "/usr/lib32", OPENGL_DRIVER_DIRS[0], OPENGL_DRIVER_DIRS[1]].join("\n") + "\n";
    std::fs::write(etc.join("ld.so.conf"), conf).map_err(Error::io("write", etc.join("ld.so.conf")))?;
    let profile_path = etc.join("profile");
    std::fs::write(&profile_path, profile::profile_script(spec))
        .map_err(Error::io("write", &profile_path))?;
    let metadata = Metadata { version: FORMAT_VERSION, spec: spec.clone(), stamps: stamps.to_vec() };
    let text = toml::to_string(&metadata).map_err(|e| Error::Plan {
        path: tmp.join(METADATA),
        reason: format!("cannot serialise metadata: {e}"),
    })?;
    std::fs::write(tmp.join(METADATA), text).map_err(Error::io("write", tmp.join(METADATA)))?;
    Ok((links, written))
}

/// Puts `new` at `out`: a rename when `out` is absent, an atomic exchange (then removal of the old tree) otherwise.
fn replace_dir(new: &Path, out: &Path) -> Result<()> {
    if out.symlink_metadata().is_err() {
        return std::fs::rename(new, out).map_err(Error::io("rename build into place", out));
    }
    if !out.join(METADATA).exists() {
        let _ = std::fs::remove_dir_all(new);
        return Err(Error::NotAnEnv {
            path: out.into(),
            reason: format!("refusing to replace a directory without {METADATA}"),
        });
    }
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        new,
        nix::fcntl::AT_FDCWD,
        out,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .map_err(Error::sys("swap the new build into place at", out))?;
    std::fs::remove_dir_all(new).map_err(Error::io("remove the previous build", new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_package_paths() {
        assert_eq!(place(Path::new("usr/bin/ls")), Place::Usr("bin/ls".into()));
        assert_eq!(place(Path::new("bin/sh")), Place::Usr("bin/sh".into()));
        assert_eq!(
            place(Path::new("usr/lib/x86_64-linux-gnu/libz.so.1")),
            Place::Lib { rest: "libz.so.1".into(), wants32: false }
        );
        assert_eq!(
            place(Path::new("usr/lib/i386-linux-gnu/pkgconfig/z.pc")),
            Place::Lib { rest: "pkgconfig/z.pc".into(), wants32: true }
        );
        assert_eq!(
            place(Path::new("lib32/libc.so.6")),
            Place::Lib { rest: "libc.so.6".into(), wants32: true }
        );
        assert_eq!(
            place(Path::new("lib/32/libc.so.6")),
            Place::Lib { rest: "libc.so.6".into(), wants32: true }
        );
        assert_eq!(place(Path::new("etc/foo.conf")), Place::Top("etc", "foo.conf".into()));
        assert_eq!(place(Path::new("usr/etc/foo.conf")), Place::Ignore);
        assert_eq!(place(Path::new("var/lib/x")), Place::Ignore);
        assert_eq!(place(Path::new("DEBIAN/control")), Place::Ignore);
    }

    #[test]
    fn first_package_wins_and_conflicts_are_listed() {
        let mut farm = Farm::default();
        let item = |s: &str| Item { source: s.into(), is_link: false, elf: None, relink: None };
        farm.insert("usr/bin/x".into(), item("/a/bin/x"));
        farm.insert("usr/bin/x".into(), item("/b/bin/x"));
        farm.insert("usr/share/d".into(), item("/a/share/d"));
        farm.insert("usr/share/d/f".into(), item("/b/share/d/f"));
        assert_eq!(farm.items[Path::new("usr/bin/x")].source, Path::new("/a/bin/x"));
        assert_eq!(farm.report.conflicts.len(), 2);
        assert_eq!(farm.report.conflicts[0].dropped, Path::new("/b/bin/x"));
        assert_eq!(farm.report.conflicts[1].kept, Path::new("/a/share/d"));
    }

    #[test]
    fn directories_of_one_package_become_one_link_and_docs_stay_out() {
        let tmp = tempfile::tempdir().unwrap();
        let file = |rel: &str| {
            let p = tmp.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        };
        file("a/usr/share/icons/theme-a/1.png");
        file("a/usr/share/icons/theme-a/sub/2.png");
        file("a/usr/share/fonts/a.ttf");
        file("a/usr/share/man/man1/a.1");
        file("b/usr/share/fonts/b.ttf");
        file("b/usr/share/doc/b/copyright");
        let mut farm = Farm::default();
        farm.add_package(&tmp.path().join("a")).unwrap();
        farm.add_package(&tmp.path().join("b")).unwrap();
        let host = tmp.path().join("host");
        std::fs::create_dir_all(host.join("usr/share")).unwrap();
        let folded = farm.folded_dirs(&host);
        // Only package a has icons: one link for the whole theme directory (the outermost one).
        assert_eq!(
            folded.get(Path::new("usr/share/icons")).map(PathBuf::as_path),
            Some(tmp.path().join("a/usr/share/icons").as_path())
        );
        assert_eq!(folded.len(), 1, "{folded:?}");
        // A directory the host has stays real, so that the env laid over the host's /usr (overlay mode) keeps the
        // host's files beside the package's.
        std::fs::create_dir_all(host.join("usr/share/icons")).unwrap();
        let folded = farm.folded_dirs(&host);
        assert_eq!(
            folded.get(Path::new("usr/share/icons/theme-a")).map(PathBuf::as_path),
            Some(tmp.path().join("a/usr/share/icons/theme-a").as_path())
        );
        assert_eq!(folded.len(), 1, "{folded:?}");
        // Both packages have fonts: a real directory of links.
        assert!(farm.items.contains_key(Path::new("usr/share/fonts/a.ttf")));
        assert!(farm.items.contains_key(Path::new("usr/share/fonts/b.ttf")));
        assert!(!farm.items.keys().any(|k| k.starts_with("usr/share/man") || k.starts_with("usr/share/doc")));

        let mut with_docs = Farm { docs: true, ..Farm::default() };
        with_docs.add_package(&tmp.path().join("a")).unwrap();
        assert!(with_docs.items.contains_key(Path::new("usr/share/man/man1/a.1")));
    }

    #[test]
    fn absolute_links_resolve_inside_their_package() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["lib", "lib32", "usr/lib"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("lib32/ld-linux.so.2"), b"loader").unwrap();
        // Debian's libc6-i386 layout: an absolute link to the package's own file.
        std::os::unix::fs::symlink("/lib32/ld-linux.so.2", root.join("lib/ld-linux.so.2")).unwrap();
        std::os::unix::fs::symlink("../../lib/ld-linux.so.2", root.join("usr/lib/ld.so")).unwrap();
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/libother.so.1", root.join("lib/libother.so"))
            .unwrap();
        let own = absolute_link_in_package(root, &root.join("lib/ld-linux.so.2"));
        assert_eq!(own.as_deref(), Some(root.join("lib32/ld-linux.so.2").as_path()));
        // Relative links resolve the same from the store; links into other packages stay.
        assert_eq!(absolute_link_in_package(root, &root.join("usr/lib/ld.so")), None);
        assert_eq!(absolute_link_in_package(root, &root.join("lib/libother.so")), None);

        let mut farm = Farm::default();
        farm.add_package(root).unwrap();
        let item = &farm.items[Path::new("usr/lib32/ld-linux.so.2")];
        assert_eq!(item.source, root.join("lib32/ld-linux.so.2"));
        assert!(farm.report.conflicts.is_empty(), "{:?}", farm.report.conflicts);
    }

    #[test]
    fn relative_links_into_other_packages_resolve_in_the_env() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = |name: &str| tmp.path().join(name);
        let write = |p: PathBuf, data: &[u8]| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        let link = |target: &str, p: PathBuf| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        };
        // Debian's gcc -> gcc-12, pkg-config -> pkgconf, and a -dev package's libz.so -> the runtime's file,
        // each target in another package; and a link inside its own package, which stays as it was.
        link("gcc-12", pkg("gcc/usr/bin/gcc"));
        write(pkg("gcc12/usr/bin/gcc-12"), b"gcc-12");
        link("pkgconf", pkg("pkgconf/usr/bin/pkg-config"));
        write(pkg("pkgconfbin/usr/bin/pkgconf"), b"pkgconf");
        link("libz.so.1.2.13", pkg("zdev/usr/lib/x86_64-linux-gnu/libz.so"));
        write(pkg("z/lib/x86_64-linux-gnu/libz.so.1.2.13"), b"not elf");
        link("pkgconf", pkg("pkgconfbin/usr/bin/own-link"));
        let spec = EnvSpec {
            packages: ["gcc", "gcc12", "pkgconf", "pkgconfbin", "zdev", "z"].iter().map(|n| pkg(n)).collect(),
            ..EnvSpec::default()
        };
        let out = tmp.path().join("env");
        build(&spec, &out).unwrap();
        let read = |rel: &str| std::fs::read(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(read("usr/bin/gcc"), b"gcc-12");
        assert_eq!(read("usr/bin/pkg-config"), b"pkgconf");
        assert_eq!(read("usr/lib/libz.so"), b"not elf");
        assert_eq!(std::fs::read_link(out.join("usr/bin/gcc")).unwrap(), Path::new("../../usr/bin/gcc-12"));
        assert_eq!(
            std::fs::read_link(out.join("usr/bin/own-link")).unwrap(),
            pkg("pkgconfbin/usr/bin/own-link")
        );
        // A target no package provides leaves the link as the package has it.
        let lone = EnvSpec { packages: vec![pkg("gcc")], ..EnvSpec::default() };
        let out2 = tmp.path().join("env2");
        build(&lone, &out2).unwrap();
        assert_eq!(std::fs::read_link(out2.join("usr/bin/gcc")).unwrap(), pkg("gcc/usr/bin/gcc"));
    }
}
