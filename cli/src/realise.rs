//! Glue between `pkgs::closure` (which packages provide a program's needs) and the store: the sources the
//! command-line options select, a [`pkgs::closure::Realiser`] that puts every package into the store (downloads
//! verified, host copies checked against the package's MD5 sums), a progress bar, and the messages for what could
//! not be provided, with a hint per cause that names only options the command has.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use pkgs::closure::{Closure, HostSource, Missing, Needs, Reason, RepoSource, Sources};
use pkgs::host::{HostDb, Installed};
use pkgs::lock::Lock;
use pkgs::realise::Realised;
use store::{Store, StorePath};

/// Where packages may come from.
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

/// Hands unpacked packages to the store, with references to their dependencies' store paths. Packages are unpacked
/// in a scratch directory inside the store, so they move into their store paths without a copy.
///
/// Before a package is downloaded, its key (the `.deb`'s SHA-256, its store name and its dependencies' store
/// paths: everything its store path depends on) is looked up in the store's package map, then in the configured
/// binary caches (`store::packages`, `cache::packages`): a package unpacked here before, or one a cache has, is
/// neither downloaded nor unpacked. A cache that fails is reported in one warning, and the package is fetched
/// from its repository instead.
pub struct StoreTarget<'a> {
    store: &'a Store,
    scratch: Option<store::ScratchDir>,
    /// The binary caches, opened at the first lookup that needs them (`None` inside: substitution is off).
    substituters: Option<Option<cache::Substituters>>,
    warned: bool,
    /// Packages added but not registered yet (name, tree, references): registered together by `finish`.
    pending: Vec<(String, store::PreparedTree, Vec<StorePath>)>,
    /// Package map entries (key, path) to write once their paths are valid.
    records: Vec<(String, StorePath)>,
}

impl<'a> StoreTarget<'a> {
    pub fn new(store: &'a Store) -> StoreTarget<'a> {
        StoreTarget {
            store,
            scratch: None,
            substituters: None,
            warned: false,
            pending: Vec::new(),
            records: Vec::new(),
        }
    }

    fn warn(&mut self, problems: &[String]) {
        if !problems.is_empty() && !self.warned {
            self.warned = true;
            eprintln!(
                "warning: substitution failed; fetching packages from their repositories instead: {}",
                problems.join("; ")
            );
        }
    }

    fn substituters(&mut self) -> Option<&cache::Substituters> {
        if self.substituters.is_none() {
            let opened = (|| -> Result<Option<cache::Substituters>> {
                let settings = crate::substitute::settings()?;
                if !settings.substitute || settings.substituters.is_empty() {
                    return Ok(None);
                }
                let http = crate::substitute::http(&settings)?;
                Ok(Some(cache::Substituters::open(&settings, self.store.store_dir(), &http)?))
            })();
            let subs = match opened {
                Ok(s) => s,
                Err(e) => {
                    self.warn(&[format!("{e:#}")]);
                    None
                }
            };
            if let Some(s) = &subs
                && !s.open_errors.is_empty()
            {
                let errors = s.open_errors.clone();
                self.warn(&errors);
            }
            self.substituters = Some(subs);
        }
        self.substituters.as_ref().and_then(Option::as_ref)
    }

    /// The package's store path from the binary caches (with its closure), if one has it with the right name and
    /// references; problems on the way are added to `problems`.
    fn substitute_package(
        &mut self,
        key: &str,
        name: &str,
        references: &[String],
        problems: &mut Vec<String>,
    ) -> Result<Option<StorePath>> {
        let store = self.store;
        let Some(subs) = self.substituters() else { return Ok(None) };
        let Some(path) = subs.find_package(key, problems) else { return Ok(None) };
        if path.name() != name {
            problems
                .push(format!("the binary caches map package {name} to '{path}', which has another name"));
            return Ok(None);
        }
        store.add_temp_root(&path)?;
        let report =
            subs.substitute(store, std::slice::from_ref(&path), &crate::substitute::Bars::new("copying"))?;
        problems.extend(report.problems);
        for p in &report.substituted {
            eprintln!("copying path '{p}' from the binary caches");
        }
        if !store.is_valid(&path)? {
            return Ok(None);
        }
        let want: std::collections::BTreeSet<StorePath> =
            references.iter().map(|r| store.parse_path(r)).collect::<Result<_, _>>()?;
        let info = store.path_info(&path)?.ok_or_else(|| anyhow!("path '{path}' is not valid"))?;
        let have: std::collections::BTreeSet<StorePath> =
            info.references.iter().filter(|r| **r != path).cloned().collect();
        if !have.is_subset(&want) {
            problems.push(format!(
                "the binary caches map package {name} to '{path}', whose references are not its dependencies"
            ));
            return Ok(None);
        }
        Ok(Some(path))
    }
}

/// The package map's key of a package: the SHA-256 of everything its store path depends on (see `StoreTarget`).
fn package_key(pkg: &pkgs::lock::LockedPackage, name: &str, references: &[String]) -> String {
    let mut refs: Vec<&str> = references.iter().map(String::as_str).collect();
    refs.sort_unstable();
    let text = format!("fhskit-package-1\n{}\n{name}\n{}", pkg.sha256.to_ascii_lowercase(), refs.join("\n"));
    store::Hash::digest(store::HashAlgo::Sha256, text.as_bytes()).to_hex()
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
        // Registered in `finish`, all together: one writer lock and one transaction instead of one per package.
        let p = self.store.prepared_path(name, &prepared, &refs).map_err(|e| fail(e.to_string()))?;
        self.pending.push((name.to_owned(), prepared, refs));
        Ok(p.to_absolute().display().to_string())
    }

    fn finish(&mut self) -> pkgs::Result<()> {
        let fail =
            |e: store::StoreError| pkgs::Error::Realise { package: "packages".into(), reason: e.to_string() };
        // `add_prepared_all` keeps every path alive (temporary roots) for this handle.
        self.store.add_prepared_all(std::mem::take(&mut self.pending)).map_err(fail)?;
        for (key, path) in std::mem::take(&mut self.records) {
            self.store.record_package(&key, &path).map_err(fail)?;
        }
        Ok(())
    }

    fn lookup(
        &mut self,
        pkg: &pkgs::lock::LockedPackage,
        name: &str,
        references: &[String],
    ) -> pkgs::Result<Option<String>> {
        let fail = |e: anyhow::Error| pkgs::Error::Realise { package: pkg.key(), reason: format!("{e:#}") };
        let key = package_key(pkg, name, references);
        if let Some(p) = self.store.package(&key).map_err(|e| fail(e.into()))? {
            self.store.add_temp_root(&p).map_err(|e| fail(e.into()))?;
            return Ok(Some(p.to_absolute().display().to_string()));
        }
        let mut problems = Vec::new();
        let found = self.substitute_package(&key, name, references, &mut problems);
        self.warn(&problems);
        let Some(path) = found.map_err(fail)? else { return Ok(None) };
        self.store.record_package(&key, &path).map_err(|e| fail(e.into()))?;
        Ok(Some(path.to_absolute().display().to_string()))
    }

    fn unpacked(
        &mut self,
        pkg: &pkgs::lock::LockedPackage,
        name: &str,
        references: &[String],
        location: &str,
    ) -> pkgs::Result<()> {
        let fail = |e: store::StoreError| pkgs::Error::Realise { package: pkg.key(), reason: e.to_string() };
        let path = self.store.parse_path(location).map_err(fail)?;
        // Written by `finish`, after the path became valid.
        self.records.push((package_key(pkg, name, references), path));
        Ok(())
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

/// Realises packages into the store: repository packages through `pkgs::realise` (verified downloads, parallel
/// unpacking, host copies of the same version), host packages by copying them from the dpkg database.
struct StoreRealiser<'a> {
    store: &'a Store,
    cache: pkgs::cache::Cache,
    /// The host root whose packages may replace downloads of the same version, if allowed.
    host_root: Option<PathBuf>,
    jobs: usize,
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

impl pkgs::closure::Realiser for StoreRealiser<'_> {
    fn realise(&mut self, lock: &Lock) -> pkgs::Result<Vec<Realised>> {
        let path = self.cache.root().join("lock");
        let _guard = self
            .cache
            .lock(|| eprintln!("waiting for another fhskit process to release {}", path.display()))?;
        let http = pkgs::http::Http::new()?;
        let options = pkgs::realise::RealiseOptions {
            jobs: self.jobs,
            host_root: self.host_root.clone(),
            native_arch: pkgs::config::native_arch().to_owned(),
        };
        let mut target = StoreTarget::new(self.store);
        pkgs::realise::realise(&http, &self.cache, lock, &options, &Bar::default(), &mut target)
    }

    fn copy_host(&mut self, db: &HostDb, pkg: &Installed) -> pkgs::Result<Realised> {
        let key = format!("{}:{}", pkg.name, pkg.architecture);
        let fail = |e: String| pkgs::Error::Realise { package: format!("{key} from the host"), reason: e };
        let tmp =
            tempfile::Builder::new().prefix(".fhskit-host-").tempdir_in(self.store.state_dir()).map_err(
                |e| fail(format!("cannot create a directory in {}: {e}", self.store.state_dir().display())),
            )?;
        let tree = tmp.path().join("pkg");
        std::fs::create_dir(&tree).map_err(|e| fail(format!("cannot create {}: {e}", tree.display())))?;
        db.copy_package(pkg, &tree)?;
        let path = self
            .store
            .add_tree(&store_name(&pkg.name, &pkg.version, &pkg.architecture), &tree, &[])
            .map_err(|e| fail(e.to_string()))?;
        self.store.add_temp_root(&path).map_err(|e| fail(e.to_string()))?;
        Ok(Realised {
            package: key,
            version: pkg.version.clone(),
            location: path.to_absolute().display().to_string(),
            from_host: true,
        })
    }

    fn dir(&self, location: &str) -> pkgs::Result<PathBuf> {
        let p = self
            .store
            .parse_path(location)
            .map_err(|e| pkgs::Error::Realise { package: location.to_owned(), reason: e.to_string() })?;
        Ok(self.store.physical_path(&p))
    }
}

/// Resolves and realises `needs` into the store from the sources `opts` selects.
pub fn resolve(store: &Store, needs: &Needs, opts: &SourceOptions) -> Result<Closure> {
    let settings = pkgs::config::Settings::load(&pkgs::config::LoadOptions {
        config_file: opts.config.clone(),
        repos: opts.repos.clone(),
        cache_dir: None,
        host_root: Some(opts.host_root.clone()),
        architectures: Vec::new(),
    })?;
    let host = if opts.host { HostSource::load(&opts.host_root)? } else { None };
    let cache = pkgs::cache::Cache::new(&settings.cache_dir);
    let repo = if !opts.repo {
        Err(Reason::Offline)
    } else {
        Ok(RepoSource::open(cache.clone(), settings.repositories.clone()))
    };
    let mut sources = Sources { host, repo };
    let mut realiser = StoreRealiser {
        store,
        cache,
        host_root: (opts.host && settings.use_host_packages).then(|| opts.host_root.clone()),
        jobs: opts.jobs,
    };
    Ok(pkgs::closure::resolve(needs, &mut sources, &mut realiser)?)
}

/// Store paths of every package of `closure`.
pub fn store_paths(store: &Store, closure: &Closure) -> Result<Vec<StorePath>> {
    closure.packages.iter().map(|p| store.parse_path(&p.location).map_err(Into::into)).collect()
}

/// What a command suggests for each cause of a missing need.
#[derive(Debug, Clone, Copy)]
pub struct Hints {
    /// The command has `--ignore-missing`.
    pub ignore_missing: bool,
}

fn hint(reason: &Reason, hints: Hints) -> String {
    match reason {
        Reason::NoRepository => "configure a package repository: `--repo '[signed-by=KEYRING] URL SUITE main'`, a \
                                 [[pkgs.repository]] table in ~/.config/fhskit/config.toml, or apt sources on the host"
            .into(),
        Reason::NoIndex(_) => "run `fhskit pkgs update` to download the repositories' package indexes".into(),
        Reason::Offline => "run without --offline to use the configured repositories".into(),
        Reason::NotInRepositories | Reason::OnlyPrivate(_) | Reason::Failed { .. } => {
            let mut h = "a repository of another release may have it (`--repo …`; `fhskit locate NAME` shows which \
                         packages ship a file)"
                .to_owned();
            if hints.ignore_missing {
                h.push_str(", or pass --ignore-missing NAME if the program can do without it");
            }
            h
        }
    }
}

fn describe(m: &Missing) -> String {
    let by = m.needed_by.first().map(|p| format!(" (needed by {})", p.display())).unwrap_or_default();
    format!("{}{by}: {}", m.need, m.reason)
}

/// The error for required needs nothing provides: each with why, then one hint per distinct cause.
pub fn missing_error(action: &str, missing: &[Missing], hints: Hints) -> anyhow::Error {
    let mut msg =
        format!("{action}: {} cannot be provided", if missing.len() == 1 { "a need" } else { "needs" });
    for m in missing {
        msg.push_str(&format!("\n  {}", describe(m)));
    }
    let mut seen: Vec<String> = Vec::new();
    for m in missing {
        let h = hint(&m.reason, hints);
        if !seen.contains(&h) {
            msg.push_str(&format!("\nhint: {h}"));
            seen.push(h);
        }
    }
    anyhow!(msg)
}

/// One line per optional library left out (bundle plugins and launcher commands counted on one line); all of them
/// with `-v`.
pub fn report_left_out(closure: &Closure, verbose: u8) {
    let (listed, counted): (Vec<_>, Vec<_>) =
        closure.left_out.iter().partition(|l| l.label.ends_with("(dlopen list)") || verbose > 0);
    for l in listed {
        eprintln!("fhskit: leaving out optional {}: {}", l.label, describe(&l.missing));
    }
    if !counted.is_empty() {
        eprintln!(
            "fhskit: leaving out {} optional plugin(s) or command(s) whose needs cannot be provided (-v lists them)",
            counted.len()
        );
    }
}

/// The directory of the package the file `path` belongs to, if it is one of the closure's.
pub fn package_of<'c>(closure: &'c Closure, path: &Path) -> Option<&'c pkgs::closure::ClosurePackage> {
    closure.packages.iter().find(|p| path.starts_with(&p.dir))
}

/// Fails with the missing-needs error when `closure` lacks required needs.
pub fn check(action: &str, closure: &Closure, hints: Hints) -> Result<()> {
    if closure.missing.is_empty() { Ok(()) } else { Err(missing_error(action, &closure.missing, hints)) }
}
