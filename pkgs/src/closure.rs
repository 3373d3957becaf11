//! The library closure of a program: sonames, files and commands → the packages that provide them, recursively,
//! following what the dynamic loader of an installed Debian system would find.
//!
//! Needs ([`Needs`]) are required (the program's own `DT_NEEDED`, its loader, a launcher's interpreter) or belong to
//! an optional group (a library the program may `dlopen`, a plugin of its bundle, a tool its launcher may call). They
//! are satisfied from two sources, in order: the host's dpkg database ([`HostSource`]: the package owning the file
//! here, copied by the caller's [`Realiser`]; a copy that fails, say a file missing on disk, falls back to the
//! repositories) and the configured apt repositories ([`RepoSource`]: the soname index built from `Contents`, the
//! dependency resolver, the caller's realisation). Every realised package is indexed as the loader sees it:
//!
//! - libraries in the standard directories of their class (`lib/<triplet>`, `usr/lib/<triplet>`, `lib64`, …);
//! - libraries Debian's alternatives link into a standard directory at install time (`libblas.so.3` →
//!   `blas/libblas.so.3`), read from the package's `postinst`, the highest priority winning across the closure;
//! - libraries in a library's own run path inside its package (`libpulse.so.0`'s `DT_RUNPATH` names
//!   `/usr/lib/x86_64-linux-gnu/pulseaudio`, where `libpulsecommon-16.1.so` lives).
//!
//! The libraries used are read in turn, so transitive needs come from packages too, never silently from the host.
//! A need no source provides is fatal only when something required needs it; an optional group whose closure
//! cannot be completed is left out whole ([`Closure::left_out`]). Each unmet need carries why ([`Reason`]): no
//! repository, no downloaded index, not in the repositories, only in another package's private directory, or its
//! package failed to resolve or realise. Nothing here prints; the caller reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use patchelf_rs::dynamic::{Class, DynamicInfo, machine_for, read_matching, system_lib_dirs};

use crate::alternatives::{self, Alternative};
use crate::cache::Cache;
use crate::config::Repository;
use crate::error::{Error, Result};
use crate::host::{HostDb, Installed};
use crate::index::SuiteIndex;
use crate::lock::Lock;
use crate::packages::Universe;
use crate::realise::Realised;
use crate::resolve::{self, Request};
use crate::soname::{self, Hit, SonameIndex};

/// The Debian architecture whose packages hold objects of this class and machine.
pub fn debian_arch(class: Class, machine: u16) -> Option<&'static str> {
    use patchelf_rs::raw::{EM_386, EM_AARCH64, EM_X86_64};
    match (class, machine) {
        (Class::Elf64, EM_X86_64) => Some("amd64"),
        (Class::Elf32, EM_386) => Some("i386"),
        (Class::Elf64, EM_AARCH64) => Some("arm64"),
        _ => None,
    }
}

/// Directories commands are looked up in, relative to a root.
const BIN_DIRS: [&str; 5] = ["usr/bin", "bin", "usr/sbin", "sbin", "usr/games"];

/// One thing a program needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// A shared library of a class, by soname.
    Soname(Class, String),
    /// A file by absolute path (`/bin/bash`); `/bin` and `/usr/bin` (merged `/usr`) count as the same.
    Path(String),
    /// A command looked up in the `bin` directories (`grep`).
    Command(String),
    /// A package by name (`name[:arch]`).
    Package(String),
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Soname(Class::Elf32, s) => write!(f, "{s} (32-bit)"),
            Need::Soname(_, s) | Need::Path(s) | Need::Package(s) => f.write_str(s),
            Need::Command(c) => write!(f, "command {c}"),
        }
    }
}

impl Need {
    fn name(&self) -> &str {
        match self {
            Need::Soname(_, s) | Need::Command(s) | Need::Package(s) => s,
            Need::Path(p) => p.rsplit('/').next().unwrap_or(p),
        }
    }
}

/// Needs that may go unmet together: if one of them (or one of theirs) cannot be provided, none is.
#[derive(Debug, Clone, Default)]
pub struct OptionalGroup {
    /// What the group is, for messages (`libpulse.so.0 (dlopen list)`, a plugin's path).
    pub label: String,
    pub needs: BTreeSet<Need>,
}

/// What to provide.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// `e_machine` of the program; 32-bit needs of an x86-64 program are i386 ones.
    pub machine: u16,
    pub required: BTreeSet<Need>,
    pub optional: Vec<OptionalGroup>,
    /// Needs (or patterns with `*`) to leave alone: provided by nobody, reported as nothing.
    pub ignore: Vec<String>,
    /// Which objects need what, for messages.
    pub needed_by: BTreeMap<Need, BTreeSet<PathBuf>>,
}

/// Why a need is not met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No repository is configured (and the host does not have it).
    NoRepository,
    /// Repositories are configured but their indexes were never downloaded.
    NoIndex(Vec<String>),
    /// Repositories were not to be used (`--offline`), and the host does not have it.
    Offline,
    /// The repositories' index lists no package shipping it.
    NotInRepositories,
    /// Only these packages ship it, in private directories no loader searches (another application's copy).
    OnlyPrivate(Vec<String>),
    /// A package that ships it could not be resolved or realised.
    Failed { package: String, error: String },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoRepository => {
                f.write_str("the host does not have it and no package repository is configured")
            }
            Reason::NoIndex(repos) => {
                write!(f, "the package index of {} was never downloaded", repos.join(", "))
            }
            Reason::Offline => f.write_str("the host does not have it (repositories not used: --offline)"),
            Reason::NotInRepositories => f.write_str("no package in the configured repositories ships it"),
            Reason::OnlyPrivate(p) => {
                write!(f, "only in private directories of {} (another application's copy)", p.join(", "))
            }
            Reason::Failed { package, error } => write!(f, "its package {package} failed: {error}"),
        }
    }
}

/// A need that is not met.
#[derive(Debug, Clone)]
pub struct Missing {
    pub need: Need,
    pub reason: Reason,
    /// Objects that need it.
    pub needed_by: Vec<PathBuf>,
}

/// An optional group that was left out, with the first need that could not be met.
#[derive(Debug, Clone)]
pub struct LeftOut {
    pub label: String,
    pub missing: Missing,
}

/// Where a package of the closure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Host,
    Repository,
}

/// One package of the closure.
#[derive(Debug, Clone)]
pub struct ClosurePackage {
    /// `name:arch`.
    pub key: String,
    pub version: String,
    /// Where the caller put it (a store path).
    pub location: String,
    /// Its files on disk.
    pub dir: PathBuf,
    pub origin: Origin,
    /// The needs it is in the closure for (empty: a dependency of another package).
    pub provides: BTreeSet<String>,
}

/// How a library is reachable, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    /// A standard library directory.
    Standard,
    /// An alternatives link (with its priority, higher first).
    Alternative(std::cmp::Reverse<i64>),
    /// A directory of some library's own run path inside its package.
    RunPath,
}

#[derive(Debug, Clone)]
struct Lib {
    /// The directory the loader finds it in (the alternative's target directory, not the link's).
    dir: PathBuf,
    file: PathBuf,
    package: usize,
    via: Via,
    /// For alternatives: the link's path relative to the root (`usr/lib/x86_64-linux-gnu/libblas.so.3`).
    link: Option<PathBuf>,
}

/// The realised closure.
#[derive(Debug, Default)]
pub struct Closure {
    pub packages: Vec<ClosurePackage>,
    libs: BTreeMap<(Class, String), Lib>,
    files: BTreeMap<Need, (PathBuf, usize)>,
    /// Required needs that are not met; the caller must not run the program.
    pub missing: Vec<Missing>,
    /// Optional groups left out.
    pub left_out: Vec<LeftOut>,
    indexed: BTreeSet<usize>,
    /// Run-path directories already indexed.
    run_path_dirs: BTreeSet<PathBuf>,
}

impl Closure {
    /// Library directories for the loader: each package's, in package order, standard ones first, without
    /// duplicates.
    pub fn lib_dirs(&self, class: Class) -> Vec<PathBuf> {
        let mut dirs: Vec<(usize, Via, PathBuf)> = self
            .libs
            .iter()
            .filter(|((c, _), _)| *c == class)
            .map(|(_, l)| (l.package, l.via, l.dir.clone()))
            .collect();
        dirs.sort();
        let mut out: Vec<PathBuf> = Vec::new();
        for (_, _, d) in dirs {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// The file that provides `soname` in `class`.
    pub fn file(&self, class: Class, soname: &str) -> Option<&Path> {
        self.libs.get(&(class, soname.to_owned())).map(|l| l.file.as_path())
    }

    /// The file that provides a path or command need.
    pub fn file_for(&self, need: &Need) -> Option<&Path> {
        match need {
            Need::Soname(c, s) => self.file(*c, s),
            _ => self.files.get(need).map(|(p, _)| p.as_path()),
        }
    }

    /// Links an installed system would have that the packages do not ship (alternatives in use): (path relative to
    /// `/`, absolute target).
    pub fn links(&self) -> Vec<(PathBuf, PathBuf)> {
        self.libs.values().filter_map(|l| Some((l.link.clone()?, l.file.clone()))).collect()
    }

    /// Libraries of the closure (class, soname, file), for callers that must look at each (patching those whose
    /// own run path names FHS directories).
    pub fn libraries(&self) -> impl Iterator<Item = (Class, &str, &Path)> {
        self.libs.iter().map(|((c, s), l)| (*c, s.as_str(), l.file.as_path()))
    }

    fn insert_lib(&mut self, class: Class, name: String, lib: Lib) {
        match self.libs.get(&(class, name.clone())) {
            Some(old) if old.via <= lib.via => {}
            _ => {
                self.libs.insert((class, name), lib);
            }
        }
    }

    /// Indexes the standard directories and alternatives of package `i`.
    fn index_package(&mut self, i: usize, machine: u16) {
        if !self.indexed.insert(i) {
            return;
        }
        let root = self.packages[i].dir.clone();
        for class in [Class::Elf64, Class::Elf32] {
            let m = machine_for(class, machine);
            for rel in system_lib_dirs(class, m) {
                self.index_dir(i, &root, &root.join(&rel), class, m, Via::Standard);
            }
        }
        for alt in alternatives::of_package(&root) {
            self.index_alternative(i, &root, &alt, machine);
        }
    }

    fn index_alternative(&mut self, i: usize, root: &Path, alt: &Alternative, machine: u16) {
        let Ok(link_rel) = alt.link.strip_prefix("/") else { return };
        let Some(link_dir) = link_rel.parent() else { return };
        let Some(name) = link_rel.file_name().map(|n| n.to_string_lossy().into_owned()) else { return };
        for class in [Class::Elf64, Class::Elf32] {
            let m = machine_for(class, machine);
            if !system_lib_dirs(class, m).iter().any(|d| Path::new(d) == link_dir) {
                continue;
            }
            let Some(file) = resolve_in(root, &root.join(alt.path.strip_prefix("/").unwrap_or(&alt.path)))
            else {
                continue;
            };
            if read_matching(&file, class, m).is_none() {
                continue;
            }
            let dir = file.parent().unwrap_or(root).to_path_buf();
            let lib = Lib {
                dir,
                file,
                package: i,
                via: Via::Alternative(std::cmp::Reverse(alt.priority)),
                link: Some(link_rel.to_path_buf()),
            };
            self.insert_lib(class, name.clone(), lib);
        }
    }

    fn index_dir(&mut self, i: usize, root: &Path, dir: &Path, class: Class, machine: u16, via: Via) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".so"))
            .collect();
        names.sort();
        for name in names {
            if self.libs.get(&(class, name.clone())).is_some_and(|l| l.via <= via) {
                continue;
            }
            let Some(file) = resolve_in(root, &dir.join(&name)) else { continue };
            if read_matching(&file, class, machine).is_none() {
                continue;
            }
            // An absolute symlink (libc6's /lib64/ld-linux-x86-64.so.2) would lead to the host: use the directory
            // of the file it names inside the package instead.
            let via_abs_link = fs::read_link(dir.join(&name)).is_ok_and(|t| t.is_absolute());
            let lib_dir = if via_abs_link {
                match file.parent() {
                    Some(p) if file.file_name().is_some_and(|f| f == name.as_str()) => p.to_path_buf(),
                    _ => continue,
                }
            } else {
                dir.to_path_buf()
            };
            self.insert_lib(class, name, Lib { dir: lib_dir, file, package: i, via, link: None });
        }
    }

    /// Indexes the directories of `lib`'s own run path that lie inside its package (absolute FHS entries taken
    /// relative to the package root, `$ORIGIN` ones as they expand).
    fn index_run_path(&mut self, i: usize, lib: &DynamicInfo) {
        let root = self.packages[i].dir.clone();
        for entry in lib.own_run_path() {
            let dir = if entry.contains('$') {
                patchelf_rs::dynamic::expand(entry, &lib.path, lib.class, lib.machine)
            } else {
                root.join(entry.trim_start_matches('/'))
            };
            if !dir.starts_with(&root) || !self.run_path_dirs.insert(dir.clone()) {
                continue;
            }
            self.index_dir(i, &root, &dir, lib.class, lib.machine, Via::RunPath);
        }
    }

    /// Finds a path or command need in the packages; records and returns the file.
    fn find_file(&mut self, need: &Need) -> Option<PathBuf> {
        if let Some((p, _)) = self.files.get(need) {
            return Some(p.clone());
        }
        let rels: Vec<String> = match need {
            Need::Path(p) => merged_usr_variants(p),
            Need::Command(c) => BIN_DIRS.iter().map(|d| format!("{d}/{c}")).collect(),
            _ => return None,
        };
        for (i, pkg) in self.packages.iter().enumerate() {
            for rel in &rels {
                let candidate = pkg.dir.join(rel);
                if resolve_in(&pkg.dir, &candidate).is_some_and(|f| f.is_file()) {
                    self.files.insert(need.clone(), (candidate.clone(), i));
                    return Some(candidate);
                }
            }
        }
        None
    }

    fn provider(&mut self, need: &Need) -> Option<(PathBuf, usize)> {
        match need {
            Need::Soname(c, s) => self.libs.get(&(*c, s.clone())).map(|l| (l.file.clone(), l.package)),
            Need::Path(_) | Need::Command(_) => {
                self.find_file(need)?;
                self.files.get(need).cloned()
            }
            Need::Package(name) => {
                let i = self.packages.iter().position(|p| package_matches(&p.key, name))?;
                Some((self.packages[i].dir.clone(), i))
            }
        }
    }
}

/// `p` (absolute) relative to `/`, and its merged-`/usr` twin (`bin/x` ↔ `usr/bin/x`, `lib/…` ↔ `usr/lib/…`).
fn merged_usr_variants(p: &str) -> Vec<String> {
    let rel = p.trim_start_matches('/').to_owned();
    let twin = match rel.strip_prefix("usr/") {
        Some(rest) if ["bin/", "sbin/", "lib"].iter().any(|d| rest.starts_with(d)) => rest.to_owned(),
        Some(_) => return vec![rel],
        None if ["bin/", "sbin/", "lib"].iter().any(|d| rel.starts_with(d)) => format!("usr/{rel}"),
        None => return vec![rel],
    };
    vec![rel, twin]
}

fn package_matches(key: &str, name: &str) -> bool {
    match name.split_once(':') {
        Some(_) => key == name,
        None => key.split(':').next() == Some(name),
    }
}

/// Resolves `path` (inside the package tree `root`) through every symlink as if the package were installed at `/`
/// (`safefs`: absolute targets restart at `root`, `..` stops there, so nothing leads out of the tree); `None` when
/// it names nothing.
fn resolve_in(root: &Path, path: &Path) -> Option<PathBuf> {
    let inner = path.strip_prefix(root).ok()?;
    let file = safefs::resolve_in_root(root, inner, safefs::Follow::All).ok()?;
    fs::symlink_metadata(&file).is_ok().then_some(file)
}

/// `*` matches any run of characters; everything else literally (autoPatchelf's ignore-missing patterns).
pub fn glob_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, rest)) => {
            let Some(tail) = s.strip_prefix(pre) else { return false };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob_match(rest, &tail[i..]))
        }
    }
}

/// The host's dpkg database, read once: installed packages and which package owns which file.
#[derive(Debug)]
pub struct HostSource {
    root: PathBuf,
    pub db: HostDb,
    /// File name → (package list stem, listed path).
    owners: HashMap<String, Vec<(String, String)>>,
}

impl HostSource {
    /// Reads the dpkg database under `root`; `Ok(None)` when there is none (NixOS, a minimal image).
    pub fn load(root: &Path) -> Result<Option<HostSource>> {
        let Some(db) = HostDb::load(root)? else { return Ok(None) };
        let info = root.join("var/lib/dpkg/info");
        let mut owners: HashMap<String, Vec<(String, String)>> = HashMap::new();
        let rd = fs::read_dir(&info).map_err(crate::error::io("list", &info))?;
        for e in rd.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = fname.strip_suffix(".list") else { continue };
            let Ok(list) = fs::read_to_string(e.path()) else { continue };
            for line in list.lines() {
                if let Some((dir, base)) = line.rsplit_once('/')
                    && (base.contains(".so") || BIN_DIRS.iter().any(|d| dir.trim_start_matches('/') == *d))
                {
                    owners.entry(base.to_owned()).or_default().push((stem.to_owned(), line.to_owned()));
                }
            }
        }
        Ok(Some(HostSource { root: root.to_path_buf(), db, owners }))
    }

    /// The installed package owning the host file `file` (inside the host root).
    fn owner_of(&self, file: &Path) -> Option<&Installed> {
        let base = file.file_name()?.to_string_lossy().into_owned();
        let canon = fs::canonicalize(file).ok()?;
        for (stem, listed) in self.owners.get(&base)? {
            let host = self.root.join(listed.trim_start_matches('/'));
            if fs::canonicalize(&host).ok().as_ref() != Some(&canon) {
                continue;
            }
            let (name, arch) = match stem.split_once(':') {
                Some((n, a)) => (n.to_owned(), Some(a.to_owned())),
                None => (stem.clone(), None),
            };
            if let Some(p) = self
                .db
                .packages()
                .find(|p| p.name == name && arch.as_ref().is_none_or(|a| *a == p.architecture))
            {
                return Some(p);
            }
        }
        None
    }

    /// The host package that provides `need` here.
    fn find(&self, need: &Need, machine: u16) -> Option<&Installed> {
        match need {
            Need::Soname(class, soname) => {
                let m = machine_for(*class, machine);
                system_lib_dirs(*class, m).into_iter().find_map(|dir| {
                    let p = self.root.join(dir).join(soname);
                    read_matching(&p, *class, m).and_then(|_| self.owner_of(&p))
                })
            }
            Need::Path(path) => merged_usr_variants(path).into_iter().find_map(|rel| {
                Some(self.root.join(rel)).filter(|p| p.exists()).and_then(|p| self.owner_of(&p))
            }),
            Need::Command(c) => BIN_DIRS
                .iter()
                .map(|d| self.root.join(d).join(c))
                .find(|p| p.is_file())
                .and_then(|p| self.owner_of(&p)),
            Need::Package(spec) => {
                let (n, a) = spec.split_once(':').unwrap_or((spec.as_str(), crate::config::native_arch()));
                self.db.get(n, a).or_else(|| self.db.get(n, "all"))
            }
        }
    }
}

/// The configured apt repositories, with their soname indexes per architecture and the package universe, read
/// lazily from the cache.
#[derive(Debug)]
pub struct RepoSource {
    repositories: Vec<Repository>,
    cache: Option<Cache>,
    indexes: HashMap<String, Vec<SonameIndex>>,
    /// Repositories whose indexes were never downloaded.
    no_index: BTreeSet<String>,
    universe: Option<Universe>,
}

impl RepoSource {
    /// Repositories whose indexes `fhskit pkgs update` put in `cache`.
    pub fn open(cache: Cache, repositories: Vec<Repository>) -> RepoSource {
        let mut no_index = BTreeSet::new();
        for repo in &repositories {
            if matches!(SuiteIndex::open(&cache, repo), Err(Error::NoIndex { .. })) {
                no_index.insert(repo.label());
            }
        }
        RepoSource { repositories, cache: Some(cache), indexes: HashMap::new(), no_index, universe: None }
    }

    /// A source from indexes and a universe already in hand (tests, tools that built them).
    pub fn from_parts(universe: Universe, indexes: Vec<(String, SonameIndex)>) -> RepoSource {
        let mut by_arch: HashMap<String, Vec<SonameIndex>> = HashMap::new();
        for (arch, idx) in indexes {
            by_arch.entry(arch).or_default().push(idx);
        }
        RepoSource {
            repositories: universe.repositories.clone(),
            cache: None,
            indexes: by_arch,
            no_index: BTreeSet::new(),
            universe: Some(universe),
        }
    }

    /// Whether no repository has a downloaded index.
    fn unusable(&self) -> Option<Reason> {
        if self.repositories.is_empty() {
            return Some(Reason::NoRepository);
        }
        (self.no_index.len() == self.repositories.len())
            .then(|| Reason::NoIndex(self.no_index.iter().cloned().collect()))
    }

    fn index(&mut self, arch: &str) -> &[SonameIndex] {
        if !self.indexes.contains_key(arch) {
            let mut v = Vec::new();
            if let Some(cache) = &self.cache {
                for repo in &self.repositories {
                    match SuiteIndex::open(cache, repo).and_then(|s| s.soname_index(arch)) {
                        Ok(Some(i)) => v.push(i),
                        Ok(None) => {}
                        Err(e) => tracing::info!("no index for {}: {e}", repo.label()),
                    }
                }
            }
            self.indexes.insert(arch.to_owned(), v);
        }
        self.indexes.get(arch).map_or(&[], Vec::as_slice)
    }

    fn universe(&mut self) -> Result<&Universe> {
        if self.universe.is_none() {
            let cache = self.cache.as_ref().ok_or(Error::NoRepository)?;
            let usable: Vec<Repository> =
                self.repositories.iter().filter(|r| !self.no_index.contains(&r.label())).cloned().collect();
            self.universe = Some(Universe::load(cache, &usable)?);
        }
        self.universe.as_ref().ok_or(Error::NoRepository)
    }

    fn hits(&mut self, arch: &str, query: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        for idx in self.index(arch) {
            if let Ok(h) = idx.lookup(query) {
                hits.extend(h);
            }
        }
        hits
    }

    /// Every package that ships `soname`, preferred one first: standard directories by the ambiguity rule; when
    /// only private directories have it, packages declaring `Provides: <soname>` (Debian's convention for
    /// libraries reached through alternatives) first. The flag says whether the hits were standard.
    pub fn soname_candidates(&mut self, arch: &str, soname: &str) -> (Vec<String>, bool) {
        let hits = self.hits(arch, soname);
        let standard: Vec<Hit> = hits.iter().filter(|h| h.standard).cloned().collect();
        if !standard.is_empty() {
            let mut all: Vec<String> = standard.iter().flat_map(|h| h.packages.clone()).collect();
            all.sort();
            all.dedup();
            soname::rank_providers(soname, &mut all);
            return (all, true);
        }
        let mut private: Vec<String> = hits.iter().flat_map(|h| h.packages.clone()).collect();
        private.sort();
        private.dedup();
        soname::rank_providers(soname, &mut private);
        if let Ok(u) = self.universe() {
            let declares = |p: &String| {
                u.named(p).iter().any(|&i| u.packages[i].provides.iter().any(|r| r.name == soname))
            };
            private.sort_by_key(|p| !declares(p));
        }
        (private, false)
    }

    /// Packages that ship the file `path` (either merged-`/usr` form) or, for a command, a `bin` entry of that name.
    fn file_candidates(&mut self, arch: &str, need: &Need) -> Vec<String> {
        let queries: Vec<String> = match need {
            Need::Path(p) => merged_usr_variants(p),
            Need::Command(c) => BIN_DIRS.iter().map(|d| format!("{d}/{c}")).collect(),
            _ => Vec::new(),
        };
        let mut out: Vec<String> = Vec::new();
        for q in queries {
            for h in self.hits(arch, &q) {
                for p in h.packages {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// Resolves `requests` (`name:arch`) into a lock with their dependencies.
    fn lock(&mut self, requests: &[String]) -> Result<Lock> {
        let u = self.universe()?;
        let reqs: Vec<Request> = requests.iter().map(|r| Request::parse(r)).collect::<Result<_>>()?;
        let native = crate::config::native_arch();
        let resolution = resolve::resolve(u, &reqs, native, None)?;
        Ok(resolution.to_lock(u, &reqs))
    }
}

/// Turns packages into directories (the store, for the CLI; plain directories in tests).
pub trait Realiser {
    /// Realises every package of `lock` (dependencies first; host copies of the same version allowed).
    fn realise(&mut self, lock: &Lock) -> Result<Vec<Realised>>;
    /// Copies an installed host package.
    fn copy_host(&mut self, db: &HostDb, pkg: &Installed) -> Result<Realised>;
    /// The directory holding a realised package's files.
    fn dir(&self, location: &str) -> Result<PathBuf>;
}

/// Where packages may come from.
#[derive(Debug)]
pub struct Sources {
    pub host: Option<HostSource>,
    pub repo: Result<RepoSource, Reason>,
}

/// The architecture whose packages can satisfy `need` for a program of `machine`.
fn arch_of(need: &Need, machine: u16) -> Option<&'static str> {
    match need {
        Need::Soname(c, _) => debian_arch(*c, machine_for(*c, machine)),
        Need::Package(p) => match p.split_once(':') {
            Some((_, "i386")) => Some("i386"),
            Some((_, "amd64")) => Some("amd64"),
            Some((_, "arm64")) => Some("arm64"),
            _ => Some(crate::config::native_arch()),
        },
        // A path inside a multiarch directory (`/usr/lib/i386-linux-gnu/dri/…`) belongs to that architecture's
        // packages: the native index does not list it.
        Need::Path(p) => Some(path_arch(p).unwrap_or_else(crate::config::native_arch)),
        Need::Command(_) => Some(crate::config::native_arch()),
    }
}

/// The architecture whose multiarch directory `path` lies in, if any.
fn path_arch(path: &str) -> Option<&'static str> {
    use patchelf_rs::raw::{EM_386, EM_AARCH64, EM_X86_64};
    [(Class::Elf64, EM_X86_64), (Class::Elf32, EM_386), (Class::Elf64, EM_AARCH64)].into_iter().find_map(
        |(class, machine)| {
            let triplet = patchelf_rs::dynamic::multiarch_triplet(class, machine)?;
            path.split('/').any(|c| c == triplet).then(|| debian_arch(class, machine)).flatten()
        },
    )
}

/// Origins of a need: required, or the optional groups (by index) that want it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Why {
    Required,
    Group(usize),
}

struct Resolver<'a, R: Realiser> {
    needs: &'a Needs,
    sources: &'a mut Sources,
    realiser: &'a mut R,
    closure: Closure,
    /// Every need met so far or pending, with its direct origins.
    wanted: BTreeMap<Need, BTreeSet<Why>>,
    /// need → the needs of the file providing it.
    edges: BTreeMap<Need, BTreeSet<Need>>,
    needed_by: BTreeMap<Need, BTreeSet<PathBuf>>,
    failed: BTreeMap<Need, Reason>,
    analysed: BTreeSet<PathBuf>,
    by_key: HashMap<String, usize>,
    /// Host packages whose copy failed (a file missing or changed on disk): not tried again.
    host_failed: BTreeSet<String>,
}

impl<R: Realiser> Resolver<'_, R> {
    fn ignored(&self, need: &Need) -> bool {
        self.needs.ignore.iter().any(|p| glob_match(p, need.name()))
    }

    fn add(&mut self, realised: &Realised, origin: Origin, why: Option<&Need>) -> Result<usize> {
        let i = match self.by_key.get(&realised.package) {
            Some(&i) => i,
            None => {
                let dir = self.realiser.dir(&realised.location)?;
                self.closure.packages.push(ClosurePackage {
                    key: realised.package.clone(),
                    version: realised.version.clone(),
                    location: realised.location.clone(),
                    dir,
                    origin: if realised.from_host { Origin::Host } else { origin },
                    provides: BTreeSet::new(),
                });
                let i = self.closure.packages.len() - 1;
                self.by_key.insert(realised.package.clone(), i);
                self.closure.index_package(i, self.needs.machine);
                i
            }
        };
        if let Some(n) = why {
            self.closure.packages[i].provides.insert(n.to_string());
        }
        Ok(i)
    }

    /// Records that the file `by`, which provides `from`, needs `dep`; true when `dep` is new.
    fn want(&mut self, from: &Need, dep: Need, by: &Path) -> bool {
        self.needed_by.entry(dep.clone()).or_default().insert(by.to_path_buf());
        self.edges.entry(from.clone()).or_default().insert(dep.clone());
        match self.wanted.entry(dep) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(BTreeSet::new());
                true
            }
            std::collections::btree_map::Entry::Occupied(_) => false,
        }
    }

    /// Reads every newly provided file's own needs until nothing new appears.
    fn expand(&mut self) {
        loop {
            let mut grew = false;
            let current: Vec<Need> = self.wanted.keys().cloned().collect();
            for need in current {
                let Some((file, pkg)) = self.closure.provider(&need) else { continue };
                if matches!(need, Need::Package(_)) {
                    grew |= self.expand_package(&need, pkg);
                    continue;
                }
                if !self.analysed.insert(file.clone()) {
                    continue;
                }
                self.closure.packages[pkg].provides.insert(need.to_string());
                let Ok(Some(info)) = DynamicInfo::read(&file) else { continue };
                self.closure.index_run_path(pkg, &info);
                let mut deps: Vec<Need> = info
                    .needed
                    .iter()
                    .filter(|n| !n.contains('/'))
                    .map(|n| Need::Soname(info.class, n.clone()))
                    .collect();
                if let Some(l) = info.loader_name() {
                    deps.push(Need::Soname(info.class, l));
                }
                for d in deps {
                    grew |= self.want(&need, d, &file);
                }
            }
            if !grew {
                break;
            }
        }
    }

    /// A package asked for by name needs what its executables and libraries need.
    fn expand_package(&mut self, need: &Need, pkg: usize) -> bool {
        let dir = self.closure.packages[pkg].dir.clone();
        if !self.analysed.insert(dir.clone()) {
            return false;
        }
        let machine = self.needs.machine;
        let mut dirs: Vec<PathBuf> = BIN_DIRS.iter().map(|b| dir.join(b)).collect();
        for class in [Class::Elf64, Class::Elf32] {
            dirs.extend(system_lib_dirs(class, machine_for(class, machine)).iter().map(|d| dir.join(d)));
        }
        let mut grew = false;
        for d in dirs {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                // Links name files already listed (or outside the package).
                if !e.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let Ok(Some(f)) = DynamicInfo::read(&e.path()) else { continue };
                let mut deps: Vec<Need> = f
                    .needed
                    .iter()
                    .filter(|n| !n.contains('/'))
                    .map(|n| Need::Soname(f.class, n.clone()))
                    .collect();
                deps.extend(f.loader_name().map(|l| Need::Soname(f.class, l)));
                for d in deps {
                    grew |= self.want(need, d, &e.path());
                }
            }
        }
        grew
    }

    fn pending(&mut self) -> Vec<Need> {
        let all: Vec<Need> = self.wanted.keys().cloned().collect();
        all.into_iter()
            .filter(|n| {
                !self.failed.contains_key(n) && !self.ignored(n) && self.closure.provider(n).is_none()
            })
            .collect()
    }

    fn take_from_host(&mut self, pending: &[Need]) -> Result<bool> {
        let mut progress = false;
        for need in pending {
            let Some(host) = self.sources.host.as_ref() else { return Ok(false) };
            let Some(pkg) = host.find(need, self.needs.machine).cloned() else { continue };
            let key = format!("{}:{}", pkg.name, pkg.architecture);
            if self.by_key.contains_key(&key) || self.host_failed.contains(&key) {
                continue;
            }
            let copied = self.realiser.copy_host(&host.db, &pkg);
            match copied {
                Ok(r) => {
                    self.add(&r, Origin::Host, Some(need))?;
                    progress = true;
                }
                Err(e) => {
                    tracing::info!("{need}: host package {key} not used ({e}); trying the repositories");
                    self.host_failed.insert(key);
                }
            }
        }
        Ok(progress)
    }

    fn take_from_repositories(&mut self, pending: &[Need]) -> Result<bool> {
        let repo = match &mut self.sources.repo {
            Ok(r) => match r.unusable() {
                None => r,
                Some(reason) => {
                    for n in pending {
                        self.failed.insert(n.clone(), reason.clone());
                    }
                    return Ok(false);
                }
            },
            Err(reason) => {
                for n in pending {
                    self.failed.insert(n.clone(), reason.clone());
                }
                return Ok(false);
            }
        };
        // Each need's preferred package; the request set is realised at once.
        let mut asked: BTreeMap<String, Vec<Need>> = BTreeMap::new();
        let mut private: BTreeMap<Need, Vec<String>> = BTreeMap::new();
        for need in pending {
            let Some(arch) = arch_of(need, self.needs.machine) else {
                self.failed.insert(need.clone(), Reason::NotInRepositories);
                continue;
            };
            let candidates = match need {
                Need::Soname(_, s) => {
                    let (c, standard) = repo.soname_candidates(arch, s);
                    if !standard && !c.is_empty() {
                        private.insert(need.clone(), c.clone());
                    }
                    c
                }
                Need::Package(p) => vec![p.split(':').next().unwrap_or(p).to_owned()],
                _ => repo.file_candidates(arch, need),
            };
            let Some(first) =
                candidates.into_iter().find(|c| !self.by_key.contains_key(&format!("{c}:{arch}")))
            else {
                let reason = match private.remove(need) {
                    Some(p) => Reason::OnlyPrivate(p),
                    None => Reason::NotInRepositories,
                };
                self.failed.insert(need.clone(), reason);
                continue;
            };
            asked.entry(format!("{first}:{arch}")).or_default().push(need.clone());
        }
        if asked.is_empty() {
            return Ok(false);
        }
        let requests: Vec<String> = asked.keys().cloned().collect();
        let before = self.closure.packages.len();
        match repo.lock(&requests).and_then(|lock| self.realiser.realise(&lock)) {
            Ok(done) => self.add_realised(&done, &asked)?,
            Err(batch) => {
                // One package that cannot be resolved must not sink the others: retry one by one.
                tracing::info!("realising {} packages together failed ({batch}); one by one", requests.len());
                for req in &requests {
                    let one = [req.clone()];
                    let repo = match &mut self.sources.repo {
                        Ok(r) => r,
                        Err(_) => break,
                    };
                    match repo.lock(&one).and_then(|lock| self.realiser.realise(&lock)) {
                        Ok(done) => self.add_realised(&done, &asked)?,
                        Err(e) => {
                            for n in &asked[req] {
                                self.failed.insert(
                                    n.clone(),
                                    Reason::Failed { package: req.clone(), error: e.to_string() },
                                );
                            }
                        }
                    }
                }
            }
        }
        // A package realised for a need that still is not provided ships it only privately.
        for (req, needs) in &asked {
            for n in needs {
                if !self.failed.contains_key(n) && self.closure.provider(n).is_none() {
                    let reason = match private.get(n) {
                        Some(p) => Reason::OnlyPrivate(p.clone()),
                        None => Reason::OnlyPrivate(vec![req.split(':').next().unwrap_or(req).to_owned()]),
                    };
                    self.failed.insert(n.clone(), reason);
                }
            }
        }
        Ok(self.closure.packages.len() > before)
    }

    fn add_realised(&mut self, done: &[Realised], asked: &BTreeMap<String, Vec<Need>>) -> Result<()> {
        for r in done {
            let why = asked.get(&r.package).and_then(|n| n.first()).cloned();
            self.add(r, Origin::Repository, why.as_ref())?;
        }
        Ok(())
    }

    fn run(mut self) -> Result<Closure> {
        for n in &self.needs.required {
            self.wanted.entry(n.clone()).or_default().insert(Why::Required);
        }
        for (g, group) in self.needs.optional.iter().enumerate() {
            for n in &group.needs {
                self.wanted.entry(n.clone()).or_default().insert(Why::Group(g));
            }
        }
        for (n, by) in &self.needs.needed_by {
            self.needed_by.entry(n.clone()).or_default().extend(by.iter().cloned());
        }
        loop {
            self.expand();
            let pending = self.pending();
            if pending.is_empty() {
                break;
            }
            // The host first, until it has nothing more to give; then the repositories for what is left.
            if self.take_from_host(&pending)? {
                continue;
            }
            if !self.take_from_repositories(&pending)? {
                // Whatever is still pending has no source left.
                for n in self.pending() {
                    self.failed.insert(n, Reason::NotInRepositories);
                }
                break;
            }
        }
        self.finish()
    }

    /// Propagates origins through the dependency edges, then decides what is fatal and what is left out.
    fn finish(mut self) -> Result<Closure> {
        let mut origins: BTreeMap<Need, BTreeSet<Why>> = self.wanted.clone();
        let mut changed = true;
        while changed {
            changed = false;
            for (from, tos) in &self.edges {
                let Some(src) = origins.get(from).cloned() else { continue };
                for to in tos {
                    let dst = origins.entry(to.clone()).or_default();
                    let before = dst.len();
                    dst.extend(src.iter().copied());
                    changed |= dst.len() != before;
                }
            }
        }
        let missing_of =
            |need: &Need, reason: &Reason, needed_by: &BTreeMap<Need, BTreeSet<PathBuf>>| Missing {
                need: need.clone(),
                reason: reason.clone(),
                needed_by: needed_by.get(need).map(|s| s.iter().cloned().collect()).unwrap_or_default(),
            };
        // A need that failed in an early round may have been provided since by a package that came in for another
        // need (Mesa's i386 DRI driver, by the package libGLX_mesa depends on): it is met, not missing.
        let failed = std::mem::take(&mut self.failed);
        self.failed = failed.into_iter().filter(|(n, _)| self.closure.provider(n).is_none()).collect();
        let mut dropped_groups: BTreeMap<usize, Missing> = BTreeMap::new();
        for (need, reason) in &self.failed {
            if self.ignored(need) {
                continue;
            }
            let why = origins.get(need).cloned().unwrap_or_default();
            let m = missing_of(need, reason, &self.needed_by);
            if why.contains(&Why::Required) {
                self.closure.missing.push(m.clone());
            }
            for w in why {
                if let Why::Group(g) = w {
                    dropped_groups.entry(g).or_insert_with(|| m.clone());
                }
            }
        }
        // Needs only dropped groups want are dropped too: their libraries are not offered to the loader.
        let live = |why: &BTreeSet<Why>| {
            why.iter().any(|w| match w {
                Why::Required => true,
                Why::Group(g) => !dropped_groups.contains_key(g),
            })
        };
        let dead: BTreeSet<Need> =
            origins.iter().filter(|(_, w)| !w.is_empty() && !live(w)).map(|(n, _)| n.clone()).collect();
        self.closure.libs.retain(|(c, s), _| !dead.contains(&Need::Soname(*c, s.clone())));
        for p in &mut self.closure.packages {
            p.provides.retain(|s| !dead.iter().any(|n| n.to_string() == *s));
        }
        for (g, missing) in dropped_groups {
            self.closure.left_out.push(LeftOut { label: self.needs.optional[g].label.clone(), missing });
        }
        Ok(self.closure)
    }
}

/// Resolves and realises `needs` from `sources`, handing packages to `realiser`.
pub fn resolve<R: Realiser>(needs: &Needs, sources: &mut Sources, realiser: &mut R) -> Result<Closure> {
    let resolver = Resolver {
        needs,
        sources,
        realiser,
        closure: Closure::default(),
        wanted: BTreeMap::new(),
        edges: BTreeMap::new(),
        needed_by: BTreeMap::new(),
        failed: BTreeMap::new(),
        analysed: BTreeSet::new(),
        by_key: HashMap::new(),
        host_failed: BTreeSet::new(),
    };
    resolver.run()
}
