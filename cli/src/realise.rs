//! Sonames → packages → store paths: the library closure of a program.
//!
//! Needs found by `closure` are satisfied from packages, in this order: the host's dpkg database (the package that
//! owns the library file on this machine, copied with every file checked against the package's MD5 sums; no
//! network), then the configured apt repositories through `pkgs` (soname index, dependency resolution, verified
//! download and unpack). Each package becomes one store path. The libraries of realised packages are analysed in
//! turn until every soname is provided or known to be unresolvable, so transitive needs are never left to the
//! host. The result ([`Closure`]) names the packages, why each is there, the library directories and the loader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use store::{Store, StorePath};

use crate::closure::{Class, matches_class, read_elf};

/// One package of a closure.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Package {
    /// `name:arch`.
    pub key: String,
    pub version: String,
    /// The store path (logical).
    pub store_path: String,
    /// Where its files are on disk.
    pub dir: PathBuf,
    /// `host` or the repository it came from.
    pub source: String,
    /// The sonames it is in the closure for (empty: a dependency of another package).
    pub provides: BTreeSet<String>,
}

/// Where sonames may come from.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Use the host's dpkg database.
    pub host: bool,
    pub host_root: PathBuf,
    /// Use the configured repositories (`--repo`, config file, host apt sources).
    pub repo: bool,
    pub repos: Vec<String>,
    pub config: Option<PathBuf>,
    pub jobs: usize,
}

/// A library of the closure: where the loader finds it.
#[derive(Debug, Clone)]
struct Lib {
    dir: PathBuf,
    file: PathBuf,
    package: usize,
}

/// The realised library closure.
#[derive(Debug, Default)]
pub struct Closure {
    pub packages: Vec<Package>,
    libs: BTreeMap<(Class, String), Lib>,
    /// Needed sonames no source provides → the packages that could (from the repositories' index).
    pub unresolved: BTreeMap<String, Vec<String>>,
    /// Optional (dlopen) sonames no source provides.
    pub optional_missing: Vec<String>,
    indexed: BTreeSet<usize>,
}

impl Closure {
    /// Library directories for the loader, in package order, without duplicates.
    pub fn lib_dirs(&self, class: Class) -> Vec<PathBuf> {
        let mut dirs: Vec<(usize, PathBuf)> = self
            .libs
            .iter()
            .filter(|((c, _), _)| *c == class)
            .map(|(_, l)| (l.package, l.dir.clone()))
            .collect();
        dirs.sort();
        let mut out: Vec<PathBuf> = Vec::new();
        for (_, d) in dirs {
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

    /// Store paths of every package.
    pub fn store_paths(&self, store: &Store) -> Result<Vec<StorePath>> {
        self.packages.iter().map(|p| store.parse_path(&p.store_path).map_err(Into::into)).collect()
    }

    fn index_package(&mut self, i: usize, machine: u16) {
        if !self.indexed.insert(i) {
            return;
        }
        let root = self.packages[i].dir.clone();
        for class in [Class::Elf64, Class::Elf32] {
            for rel in class.system_lib_dirs() {
                let dir = root.join(rel);
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".so"))
                    .collect();
                names.sort();
                for name in names {
                    let key = (class, name.clone());
                    if self.libs.contains_key(&key) {
                        continue;
                    }
                    let Some(file) = resolve_in(&root, &dir.join(&name)) else { continue };
                    if !matches_class(&file, class, machine_for(class, machine)) {
                        continue;
                    }
                    // An absolute symlink (libc6's /lib64/ld-linux-x86-64.so.2) would lead to the host: use the
                    // directory of the file it names inside the package instead.
                    let via_link = fs::symlink_metadata(dir.join(&name)).is_ok_and(|m| m.is_symlink())
                        && fs::read_link(dir.join(&name)).is_ok_and(|t| t.is_absolute());
                    let lib_dir = if via_link {
                        match file.parent() {
                            Some(p) if file.file_name().is_some_and(|f| f == name.as_str()) => {
                                p.to_path_buf()
                            }
                            _ => continue,
                        }
                    } else {
                        dir.clone()
                    };
                    self.libs.insert(key, Lib { dir: lib_dir, file, package: i });
                }
            }
        }
    }
}

/// The machine of the other class on the same family (x86-64 ↔ i386).
fn machine_for(class: Class, machine: u16) -> u16 {
    use patchelf_rs::raw::{EM_386, EM_X86_64};
    match (class, machine) {
        (Class::Elf32, EM_X86_64) => EM_386,
        (Class::Elf64, EM_386) => EM_X86_64,
        _ => machine,
    }
}

/// Resolves `path` (inside the package tree `root`) through symlinks, taking absolute targets relative to `root`;
/// `None` when it leads outside the tree or nowhere.
fn resolve_in(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..16 {
        let meta = fs::symlink_metadata(&p).ok()?;
        if !meta.is_symlink() {
            return p.starts_with(root).then_some(p);
        }
        let t = fs::read_link(&p).ok()?;
        p = if t.is_absolute() { root.join(t.strip_prefix("/").ok()?) } else { p.parent()?.join(t) };
        p = normalize(&p);
    }
    None
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Store names allow `[A-Za-z0-9+-._?=]`; dpkg versions also use `:` and `~`.
fn store_name(name: &str, version: &str, arch: &str) -> String {
    let native = pkgs::config::native_arch();
    let mut s = format!("{name}-{version}");
    if arch != native && arch != "all" {
        s.push('-');
        s.push_str(arch);
    }
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "+-._?=".contains(c) { c } else { '_' }).collect()
}

/// The host's dpkg database, read once: installed versions and which package owns which file.
struct HostSource {
    root: PathBuf,
    db: pkgs::host::HostDb,
    /// File name → (package list stem, listed path).
    owners: HashMap<String, Vec<(String, String)>>,
}

impl HostSource {
    fn load(root: &Path) -> Result<Option<HostSource>> {
        let Some(db) = pkgs::host::HostDb::load(root)? else { return Ok(None) };
        let info = root.join("var/lib/dpkg/info");
        let mut owners: HashMap<String, Vec<(String, String)>> = HashMap::new();
        let rd = fs::read_dir(&info).with_context(|| format!("cannot list {}", info.display()))?;
        for e in rd.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = fname.strip_suffix(".list") else { continue };
            let Ok(list) = fs::read_to_string(e.path()) else { continue };
            for line in list.lines() {
                if let Some((_, base)) = line.rsplit_once('/')
                    && (base.contains(".so") || !base.contains('.'))
                {
                    owners.entry(base.to_owned()).or_default().push((stem.to_owned(), line.to_owned()));
                }
            }
        }
        Ok(Some(HostSource { root: root.to_path_buf(), db, owners }))
    }

    /// The package (name, arch, version) owning the host file `file` (an absolute path inside the host root).
    fn owner_of(&self, file: &Path) -> Option<(String, String, String)> {
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
            let found = self
                .db
                .packages()
                .find(|p| p.name == name && arch.as_ref().is_none_or(|want| *want == p.architecture))
                .map(|p| (p.name.clone(), p.architecture.clone(), p.version.clone()));
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// The host package providing `soname` in `class`.
    fn find(&self, class: Class, machine: u16, soname: &str) -> Option<(String, String, String)> {
        for dir in class.system_lib_dirs() {
            let p = self.root.join(dir).join(soname);
            if matches_class(&p, class, machine)
                && let Some(o) = self.owner_of(&p)
            {
                return Some(o);
            }
        }
        None
    }

    /// The host package that owns an absolute path (a launcher's `#!` interpreter).
    fn find_path(&self, path: &str) -> Option<(String, String, String)> {
        self.owner_of(&self.root.join(path.trim_start_matches('/')))
    }

    /// Copies the files of an installed package into `dest`, each checked against the package's MD5 sums.
    fn copy(&self, name: &str, arch: &str, dest: &Path) -> Result<()> {
        let pkg =
            self.db.get(name, arch).ok_or_else(|| anyhow!("{name}:{arch} is not installed on this host"))?;
        self.db.copy_package(pkg, dest)?;
        Ok(())
    }
}

/// The configured apt repositories, with their soname indexes per architecture.
struct RepoSource {
    settings: pkgs::config::Settings,
    cache: pkgs::cache::Cache,
    indexes: HashMap<String, Vec<pkgs::soname::SonameIndex>>,
    universe: Option<pkgs::packages::Universe>,
}

impl RepoSource {
    fn load(opts: &SourceOptions) -> Result<Option<RepoSource>> {
        let settings = pkgs::config::Settings::load(&pkgs::config::LoadOptions {
            config_file: opts.config.clone(),
            repos: opts.repos.clone(),
            cache_dir: None,
            host_root: Some(opts.host_root.clone()),
            architectures: Vec::new(),
        })?;
        if settings.repositories.is_empty() {
            return Ok(None);
        }
        let cache = pkgs::cache::Cache::new(&settings.cache_dir);
        Ok(Some(RepoSource { settings, cache, indexes: HashMap::new(), universe: None }))
    }

    fn index(&mut self, arch: &str) -> &[pkgs::soname::SonameIndex] {
        if !self.indexes.contains_key(arch) {
            let mut v = Vec::new();
            for repo in &self.settings.repositories {
                match pkgs::index::SuiteIndex::open(&self.cache, repo).and_then(|s| s.soname_index(arch)) {
                    Ok(Some(i)) => v.push(i),
                    Ok(None) => {}
                    Err(e) => tracing::info!("no index for {}: {e}", repo.label()),
                }
            }
            self.indexes.insert(arch.to_owned(), v);
        }
        self.indexes.get(arch).map_or(&[], Vec::as_slice)
    }

    /// Every package that ships `soname` in a standard library directory, preferred one first.
    fn candidates(&mut self, arch: &str, soname: &str) -> Vec<String> {
        let mut hits = Vec::new();
        for idx in self.index(arch) {
            if let Ok(h) = idx.lookup_name(soname) {
                hits.extend(h.into_iter().filter(|h| h.standard));
            }
        }
        let preferred = pkgs::soname::preferred(soname, &hits);
        let mut all: Vec<String> = hits.iter().flat_map(|h| h.packages.clone()).collect();
        all.sort();
        all.dedup();
        pkgs::soname::rank_providers(soname, &mut all);
        if let Some(p) = preferred {
            all.retain(|x| *x != p);
            all.insert(0, p);
        }
        all
    }

    /// Resolves and realises `requests` (`name:arch`) with their dependencies into the store.
    fn realise(
        &mut self,
        store: &Store,
        requests: &[String],
        opts: &SourceOptions,
    ) -> Result<Vec<(String, String, String)>> {
        if self.universe.is_none() {
            self.universe = Some(pkgs::packages::Universe::load(&self.cache, &self.settings.repositories)?);
        }
        let u = self.universe.as_ref().ok_or_else(|| anyhow!("no package universe"))?;
        let reqs: Vec<pkgs::resolve::Request> =
            requests.iter().map(|r| pkgs::resolve::Request::parse(r)).collect::<Result<_, _>>()?;
        let native = pkgs::config::native_arch().to_owned();
        let resolution = pkgs::resolve::resolve(u, &reqs, &native, None)?;
        let lock = resolution.to_lock(u, &reqs);
        let path = self.cache.root().join("lock");
        let _guard = self
            .cache
            .lock(|| eprintln!("waiting for another fhskit process to release {}", path.display()))?;
        let http = pkgs::http::Http::new()?;
        let ropts = pkgs::realise::RealiseOptions {
            jobs: opts.jobs,
            host_root: (opts.host && self.settings.use_host_packages).then(|| opts.host_root.clone()),
            native_arch: native,
        };
        let mut target = StoreTarget::new(store);
        let bar = crate::realise::Bar::default();
        let done = pkgs::realise::realise(&http, &self.cache, &lock, &ropts, &bar, &mut target)?;
        Ok(done
            .into_iter()
            .map(|r| {
                let source = if r.from_host { "host".to_owned() } else { "repository".to_owned() };
                (r.package, r.version, format!("{}\t{source}", r.location))
            })
            .collect())
    }
}

/// Hands unpacked packages to the store, with references to their dependencies' store paths. Packages are unpacked
/// in a scratch directory inside the store, so they move into their store paths without a copy.
pub struct StoreTarget<'a> {
    store: &'a Store,
    scratch: Option<store::ScratchDir>,
}

impl<'a> StoreTarget<'a> {
    pub fn new(store: &'a Store) -> StoreTarget<'a> {
        StoreTarget { store, scratch: None }
    }
}

impl pkgs::realise::Target for StoreTarget<'_> {
    type Prepared = store::PreparedTree;

    fn scratch_dir(&mut self) -> pkgs::Result<Option<PathBuf>> {
        if self.scratch.is_none() {
            let dir = self.store.scratch_dir().map_err(|e| pkgs::Error::Realise {
                package: "packages".into(),
                reason: format!("no scratch directory in the store: {e}"),
            })?;
            self.scratch = Some(dir);
        }
        Ok(self.scratch.as_ref().map(|d| d.path().to_owned()))
    }

    fn prepare(&self, pkg: &pkgs::lock::LockedPackage, tree: PathBuf) -> pkgs::Result<store::PreparedTree> {
        self.store
            .prepare_tree(&tree)
            .map_err(|e| pkgs::Error::Realise { package: pkg.key(), reason: e.to_string() })
    }

    fn add(
        &mut self,
        _pkg: &pkgs::lock::LockedPackage,
        name: &str,
        prepared: store::PreparedTree,
        references: &[String],
    ) -> pkgs::Result<String> {
        let fail = |e: String| pkgs::Error::Realise { package: name.to_owned(), reason: e };
        let refs: Vec<StorePath> = references
            .iter()
            .map(|r| self.store.parse_path(r))
            .collect::<Result<_, _>>()
            .map_err(|e| fail(e.to_string()))?;
        let p = self.store.add_prepared(name, prepared, &refs).map_err(|e| fail(e.to_string()))?;
        self.store.add_temp_root(&p).map_err(|e| fail(e.to_string()))?;
        Ok(p.to_absolute().display().to_string())
    }
}

/// A byte progress bar on a terminal; silent otherwise.
#[derive(Default)]
pub struct Bar {
    bar: std::sync::OnceLock<indicatif::ProgressBar>,
}

impl pkgs::fetch::Reporter for Bar {
    fn start(&self, files: usize, bytes: u64) {
        if files == 0 || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = indicatif::ProgressBar::new(bytes);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("fetching {files} package(s)"));
        self.bar.set(bar).ok();
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = self.bar.get() {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.get() {
            b.finish_and_clear();
        }
    }
}

/// What to realise: sonames per class, optional sonames, extra packages by name, and host paths (a launcher's
/// interpreter) whose packages are needed too.
#[derive(Debug, Default, Clone)]
pub struct Needs {
    pub machine: u16,
    pub sonames: BTreeSet<(Class, String)>,
    pub optional: BTreeSet<(Class, String)>,
    pub packages: Vec<String>,
    pub paths: Vec<String>,
    /// Sonames to leave to the host (patch --keep-libc) or ignore (--ignore-missing patterns).
    pub ignore: Vec<String>,
}

/// Resolves and realises `needs` into the store.
pub fn realise(store: &Store, needs: &Needs, opts: &SourceOptions) -> Result<Closure> {
    let mut closure = Closure::default();
    let host = if opts.host { HostSource::load(&opts.host_root)? } else { None };
    let mut repo = if opts.repo { RepoSource::load(opts)? } else { None };
    let mut wanted: BTreeSet<(Class, String)> = needs.sonames.clone();
    let optional: BTreeSet<(Class, String)> = needs.optional.clone();
    let mut failed: BTreeSet<(Class, String)> = BTreeSet::new();
    let mut analysed: BTreeSet<PathBuf> = BTreeSet::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let ignored = |s: &str| needs.ignore.iter().any(|p| glob_match(p, s));

    // Packages asked for by name or by a host path (launcher interpreters, steam-run's set).
    let mut first: Vec<(String, String, String)> = Vec::new();
    if let Some(h) = &host {
        for p in &needs.paths {
            if let Some(o) = h.find_path(p) {
                first.push(o);
            }
        }
    }
    let mut by_name: Vec<String> = needs.packages.clone();
    if let Some(h) = &host {
        by_name.retain(|spec| {
            let (n, a) = spec.split_once(':').unwrap_or((spec.as_str(), pkgs::config::native_arch()));
            match h.db.get(n, a).or_else(|| h.db.get(n, "all")) {
                Some(p) => {
                    first.push((p.name.clone(), p.architecture.clone(), p.version.clone()));
                    false
                }
                None => true,
            }
        });
    }
    for (name, arch, version) in first {
        if let Some(h) = &host {
            add_host_package(store, h, &mut closure, &mut by_key, &name, &arch, &version, None)?;
        }
    }
    if !by_name.is_empty() {
        match repo.as_mut() {
            Some(r) => {
                for (key, version, loc) in r.realise(store, &by_name, opts)? {
                    add_realised(store, &mut closure, &mut by_key, &key, &version, &loc, None)?;
                }
            }
            None => {
                return Err(anyhow!(
                    "packages {} are not installed on this host and no repository is configured",
                    by_name.join(", ")
                ));
            }
        }
    }
    for i in 0..closure.packages.len() {
        closure.index_package(i, needs.machine);
    }
    // Executables of packages asked for by name need their libraries too.
    for i in 0..closure.packages.len() {
        for bin in ["bin", "usr/bin", "sbin", "usr/sbin"] {
            let Ok(rd) = fs::read_dir(closure.packages[i].dir.join(bin)) else { continue };
            for e in rd.flatten() {
                if let Ok(Some(f)) = read_elf(&e.path()) {
                    for n in f.needed {
                        wanted.insert((f.class, n));
                    }
                    if let Some(l) = f.interpreter.as_ref().and_then(|i| Path::new(i).file_name()) {
                        wanted.insert((f.class, l.to_string_lossy().into_owned()));
                    }
                }
            }
        }
    }
    let all_wanted = |w: &BTreeSet<(Class, String)>| -> Vec<(Class, String, bool)> {
        w.iter()
            .map(|(c, s)| (*c, s.clone(), false))
            .chain(optional.iter().map(|(c, s)| (*c, s.clone(), true)))
            .collect()
    };
    loop {
        // Satisfy from what is realised, analysing each newly used library for its own needs.
        let mut grew = true;
        while grew {
            grew = false;
            for (class, soname, _) in all_wanted(&wanted) {
                let Some(lib) = closure.libs.get(&(class, soname.clone())) else { continue };
                if !analysed.insert(lib.file.clone()) {
                    continue;
                }
                closure.packages[lib.package].provides.insert(soname.clone());
                if let Ok(Some(f)) = read_elf(&lib.file) {
                    for n in f.needed {
                        if !n.contains('/') && wanted.insert((f.class, n)) {
                            grew = true;
                        }
                    }
                }
            }
        }
        let pending: Vec<(Class, String, bool)> = all_wanted(&wanted)
            .into_iter()
            .filter(|(c, s, _)| {
                !closure.libs.contains_key(&(*c, s.clone()))
                    && !failed.contains(&(*c, s.clone()))
                    && !ignored(s)
            })
            .collect();
        if pending.is_empty() {
            break;
        }
        let mut progress = false;
        let mut for_repo: Vec<(Class, String, bool)> = Vec::new();
        for (class, soname, opt) in pending {
            let machine = machine_for(class, needs.machine);
            if let Some((name, arch, version)) = host.as_ref().and_then(|h| h.find(class, machine, &soname))
                && let Some(h) = &host
            {
                let before = closure.packages.len();
                match add_host_package(
                    store,
                    h,
                    &mut closure,
                    &mut by_key,
                    &name,
                    &arch,
                    &version,
                    Some(&soname),
                ) {
                    Ok(i) => {
                        closure.index_package(i, needs.machine);
                        if closure.libs.contains_key(&(class, soname.clone())) {
                            let _ = before;
                            progress = true;
                            continue;
                        }
                    }
                    Err(e) => tracing::info!("{soname}: not taken from the host: {e:#}"),
                }
            }
            for_repo.push((class, soname, opt));
        }
        if !for_repo.is_empty() {
            if let Some(r) = repo.as_mut() {
                let mut requests: BTreeSet<String> = BTreeSet::new();
                let mut asked: Vec<(Class, String, bool)> = Vec::new();
                for (class, soname, opt) in &for_repo {
                    let Some(arch) = class.debian_arch(machine_for(*class, needs.machine)) else { continue };
                    if let Some(pkg) = r.candidates(arch, soname).into_iter().next() {
                        requests.insert(format!("{pkg}:{arch}"));
                        asked.push((*class, soname.clone(), *opt));
                    }
                }
                if !requests.is_empty() {
                    let reqs: Vec<String> = requests.into_iter().collect();
                    let done = r.realise(store, &reqs, opts)?;
                    let before = closure.packages.len();
                    for (key, version, loc) in done {
                        add_realised(store, &mut closure, &mut by_key, &key, &version, &loc, None)?;
                    }
                    for i in 0..closure.packages.len() {
                        closure.index_package(i, needs.machine);
                    }
                    progress |= closure.packages.len() > before;
                }
            }
            for (class, soname, opt) in for_repo {
                if closure.libs.contains_key(&(class, soname.clone())) {
                    continue;
                }
                if !progress || repo.is_none() {
                    failed.insert((class, soname.clone()));
                }
                let _ = opt;
            }
        }
        if !progress {
            break;
        }
    }
    // Everything still missing after the last round is unresolvable.
    for (class, soname, opt) in all_wanted(&wanted) {
        if closure.libs.contains_key(&(class, soname.clone())) || ignored(&soname) {
            continue;
        }
        if opt {
            closure.optional_missing.push(soname);
            continue;
        }
        let cands = match (repo.as_mut(), class.debian_arch(machine_for(class, needs.machine))) {
            (Some(r), Some(arch)) => r.candidates(arch, &soname),
            _ => Vec::new(),
        };
        closure.unresolved.insert(soname, cands);
    }
    Ok(closure)
}

#[allow(clippy::too_many_arguments)]
fn add_host_package(
    store: &Store,
    host: &HostSource,
    closure: &mut Closure,
    by_key: &mut HashMap<String, usize>,
    name: &str,
    arch: &str,
    version: &str,
    soname: Option<&str>,
) -> Result<usize> {
    let key = format!("{name}:{arch}");
    if let Some(&i) = by_key.get(&key) {
        if let Some(s) = soname {
            closure.packages[i].provides.insert(s.to_owned());
        }
        return Ok(i);
    }
    let tmp = tempfile::Builder::new()
        .prefix(".fhskit-host-")
        .tempdir_in(store.state_dir())
        .with_context(|| format!("cannot create a directory in {}", store.state_dir().display()))?;
    let tree = tmp.path().join("pkg");
    fs::create_dir(&tree).with_context(|| format!("cannot create {}", tree.display()))?;
    host.copy(name, arch, &tree)?;
    let path = store.add_tree(&store_name(name, version, arch), &tree, &[])?;
    store.add_temp_root(&path)?;
    let loc = format!("{}\thost", path.to_absolute().display());
    add_realised(store, closure, by_key, &key, version, &loc, soname)
}

fn add_realised(
    store: &Store,
    closure: &mut Closure,
    by_key: &mut HashMap<String, usize>,
    key: &str,
    version: &str,
    loc: &str,
    soname: Option<&str>,
) -> Result<usize> {
    if let Some(&i) = by_key.get(key) {
        if let Some(s) = soname {
            closure.packages[i].provides.insert(s.to_owned());
        }
        return Ok(i);
    }
    let (location, source) = loc.split_once('\t').unwrap_or((loc, "repository"));
    let dir = store.physical_path(&store.parse_path(location)?);
    let pkg = Package {
        key: key.to_owned(),
        version: version.to_owned(),
        store_path: location.to_owned(),
        dir,
        source: source.to_owned(),
        provides: soname.map(|s| BTreeSet::from([s.to_owned()])).unwrap_or_default(),
    };
    closure.packages.push(pkg);
    let i = closure.packages.len() - 1;
    by_key.insert(key.to_owned(), i);
    Ok(i)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "libfoo.so.1"));
        assert!(glob_match("libGL*", "libGL.so.1"));
        assert!(!glob_match("libGL*", "libEGL.so.1"));
        assert!(glob_match("lib*.so.1", "libz.so.1"));
    }

    #[test]
    fn store_names_are_valid() {
        assert_eq!(store_name("libc6", "2.36-9+deb12u4", "amd64"), "libc6-2.36-9+deb12u4");
        assert_eq!(store_name("x", "1:2~rc", "i386"), "x-1_2_rc-i386");
    }
}
