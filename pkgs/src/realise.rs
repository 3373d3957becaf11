//! Realisation: turning a lock file into one unpacked tree per package handed to a [`Target`] (the store, through
//! the CLI, or a plain directory), dependencies first so each package can reference its dependencies' paths.
//!
//! Packages the host has installed at the same version are copied from the host (verified by MD5); the rest are
//! downloaded ([`crate::fetch`]), verified, and unpacked ([`crate::deb`]). Each package is one job on a pool of
//! `jobs` threads, largest first: download, unpack and [`Target::prepare`] (for the store: move the tree in,
//! canonicalise and hash it) run for many packages at once, and downloads overlap unpacking. Only the cheap
//! [`Target::add`] runs in dependency order, and [`Target::finish`] ends the batch (the store registers it in one
//! transaction). Trees are unpacked where the target says ([`Target::scratch_dir`], on
//! the destination's file system, so they are moved, not copied), else in the cache's scratch directory.
//! Dependency cycles (libc6 and libgcc-s1 depend on each other) are broken at the back edge: a package cannot
//! reference a path that needs its own path first. Before anything is downloaded, the target is asked for each
//! package in dependency order ([`Target::lookup`]): the store may have unpacked it before, or a binary cache may
//! have it, and then it is neither downloaded nor unpacked.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::cache::Cache;
use crate::error::{Error, Result, io};
use crate::fetch::{FetchItem, Reporter, announce, collect_results, fetch, run_parallel};
use crate::host::HostDb;
use crate::http::Http;
use crate::lock::{Lock, LockedPackage};

/// Where realised packages go.
pub trait Target: Sync {
    /// What [`Target::prepare`] hands to [`Target::add`].
    type Prepared: Send;

    /// A directory to unpack in, on the destination's file system so trees move there without a copy; `None`
    /// for the cache's scratch directory.
    fn scratch_dir(&mut self) -> Result<Option<PathBuf>> {
        Ok(None)
    }

    /// The part of adding `pkg`'s unpacked `tree` that needs no other package (moving, hashing). Called on worker
    /// threads, in any order, as soon as the package is unpacked; `tree` is the target's to take.
    fn prepare(&self, pkg: &LockedPackage, tree: PathBuf) -> Result<Self::Prepared>;

    /// Adds a prepared package named `name` with the locations of its dependencies (added before it), and returns
    /// the package's location (a store path, a directory).
    fn add(
        &mut self,
        pkg: &LockedPackage,
        name: &str,
        prepared: Self::Prepared,
        references: &[String],
    ) -> Result<String>;

    /// The location `pkg` would get from [`Target::add`] with `references` (its dependencies' locations), if the
    /// target has it already or can have it without the `.deb` (a store that unpacked the same package before, a
    /// binary cache that has it). Asked in dependency order before anything is downloaded; a package found here
    /// is neither downloaded nor unpacked.
    fn lookup(
        &mut self,
        _pkg: &LockedPackage,
        _name: &str,
        _references: &[String],
    ) -> Result<Option<String>> {
        Ok(None)
    }

    /// Called once after every package was added: a target that defers the work of [`Target::add`] (the store
    /// registers the whole batch in one transaction) completes it here. The locations `add` returned are usable
    /// only after this succeeded.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    /// Told after [`Target::add`] of a package unpacked from its verified `.deb` (not copied from the host),
    /// so that [`Target::lookup`] can find it later.
    fn unpacked(
        &mut self,
        _pkg: &LockedPackage,
        _name: &str,
        _references: &[String],
        _location: &str,
    ) -> Result<()> {
        Ok(())
    }
}

/// A target that moves each tree to `<dir>/<name>` (the `--into` option; no store involved).
#[derive(Debug)]
pub struct DirTarget {
    pub dir: PathBuf,
}

impl Target for DirTarget {
    type Prepared = PathBuf;

    fn prepare(&self, _pkg: &LockedPackage, tree: PathBuf) -> Result<PathBuf> {
        Ok(tree)
    }

    fn add(
        &mut self,
        _pkg: &LockedPackage,
        name: &str,
        tree: PathBuf,
        _references: &[String],
    ) -> Result<String> {
        std::fs::create_dir_all(&self.dir).map_err(io("create directory", &self.dir))?;
        // Absolute, so the printed location is usable from any directory.
        let dir = std::fs::canonicalize(&self.dir).map_err(io("resolve directory", &self.dir))?;
        let dest = dir.join(name);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(io("replace", &dest))?;
        }
        match std::fs::rename(&tree, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                // The cache is on another file system: copy beside the destination, then rename.
                let tmp = tempfile::Builder::new()
                    .prefix(".fhskit-copy-")
                    .tempdir_in(&dir)
                    .map_err(io("create temporary directory in", &dir))?;
                let copy = tmp.path().join("x");
                copy_tree(&tree, &copy)?;
                std::fs::rename(&copy, &dest).map_err(io("move package tree to", &dest))?;
            }
            Err(e) => return Err(io("move package tree to", &dest)(e)),
        }
        Ok(dest.display().to_string())
    }
}

/// Copies a tree of directories, regular files (with their permissions) and symlinks.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(src).map_err(io("read metadata of", src))?;
    if meta.is_symlink() {
        let target = std::fs::read_link(src).map_err(io("read symlink", src))?;
        std::os::unix::fs::symlink(target, dst).map_err(io("create symlink", dst))?;
    } else if meta.is_dir() {
        std::fs::create_dir(dst).map_err(io("create directory", dst))?;
        for entry in std::fs::read_dir(src).map_err(io("list directory", src))? {
            let entry = entry.map_err(io("list directory", src))?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        std::fs::set_permissions(dst, meta.permissions()).map_err(io("set permissions of", dst))?;
    } else {
        std::fs::copy(src, dst).map_err(io("copy", src))?;
    }
    Ok(())
}

/// One realised package.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Realised {
    /// `name:arch`.
    pub package: String,
    pub version: String,
    pub location: String,
    /// Copied from the host's dpkg database instead of downloaded.
    pub from_host: bool,
}

/// Options for [`realise`].
#[derive(Debug, Clone)]
pub struct RealiseOptions {
    pub jobs: usize,
    /// Use the host's dpkg database under this root when it has the same version.
    pub host_root: Option<PathBuf>,
    /// The native architecture (foreign packages get an `-<arch>` name suffix).
    pub native_arch: String,
}

/// The store name of a package: `<package>-<version>` (plus `-<arch>` for a foreign architecture), with
/// characters store names cannot hold (`:` `~`) replaced by `_`.
pub fn store_name(pkg: &LockedPackage, native: &str) -> String {
    let mut name = format!("{}-{}", pkg.name, pkg.version);
    if pkg.architecture != native && pkg.architecture != "all" {
        name.push('-');
        name.push_str(&pkg.architecture);
    }
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "+-._?=".contains(c) { c } else { '_' }).collect()
}

/// Dependencies-first order over the lock, dropping the back edges of cycles. Returns (order, kept edges).
pub fn topo_order(lock: &Lock) -> (Vec<usize>, BTreeMap<usize, Vec<usize>>) {
    let index: HashMap<String, usize> = lock.packages.iter().enumerate().map(|(i, p)| (p.key(), i)).collect();
    let mut state = vec![0u8; lock.packages.len()]; // 0 new, 1 on stack, 2 done
    let mut order = Vec::new();
    let mut kept: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    fn visit(
        i: usize,
        lock: &Lock,
        index: &HashMap<String, usize>,
        state: &mut [u8],
        order: &mut Vec<usize>,
        kept: &mut BTreeMap<usize, Vec<usize>>,
    ) {
        state[i] = 1;
        for d in &lock.packages[i].depends {
            let Some(&j) = index.get(d) else { continue };
            match state[j] {
                0 => {
                    visit(j, lock, index, state, order, kept);
                    kept.entry(i).or_default().push(j);
                }
                2 => kept.entry(i).or_default().push(j),
                _ => {
                    tracing::debug!(from = %lock.packages[i].key(), to = %d, "dependency cycle: no reference")
                }
            }
        }
        state[i] = 2;
        order.push(i);
    }
    for i in 0..lock.packages.len() {
        if state[i] == 0 {
            visit(i, lock, &index, &mut state, &mut order, &mut kept);
        }
    }
    (order, kept)
}

/// Realises every package of `lock` into `target`. The caller holds the cache lock.
pub fn realise<T: Target>(
    http: &Http,
    cache: &Cache,
    lock: &Lock,
    opts: &RealiseOptions,
    reporter: &dyn Reporter,
    target: &mut T,
) -> Result<Vec<Realised>> {
    let scratch = match target.scratch_dir()? {
        Some(dir) => dir,
        None => cache.scratch_dir()?,
    };
    let work = tempfile::Builder::new()
        .prefix("realise-")
        .tempdir_in(&scratch)
        .map_err(io("create directory in", &scratch))?;
    let host = match &opts.host_root {
        Some(root) => HostDb::load(root)?,
        None => None,
    };
    let installed: Vec<_> = lock
        .packages
        .iter()
        .map(|p| host.as_ref().and_then(|db| db.find(&p.name, &p.architecture, &p.version)))
        .collect();
    let (order, edges) = topo_order(lock);
    let refs_of = |i: usize, locations: &HashMap<usize, String>| -> Option<Vec<String>> {
        edges.get(&i).into_iter().flatten().map(|j| locations.get(j).cloned()).collect()
    };
    // What the target has or gets without the .deb; a package is looked up only when all its dependencies were
    // found (otherwise its references are not known before unpacking them).
    let mut known: HashMap<usize, String> = HashMap::new();
    for &i in &order {
        let Some(refs) = refs_of(i, &known) else { continue };
        let p = &lock.packages[i];
        if let Some(location) = target.lookup(p, &store_name(p, &opts.native_arch), &refs)? {
            known.insert(i, location);
        }
    }
    let items: Vec<FetchItem> = lock
        .packages
        .iter()
        .map(|p| FetchItem { label: p.key(), url: p.url(), size: p.size, sha256: p.sha256.clone() })
        .collect();
    announce(
        cache,
        items
            .iter()
            .zip(&installed)
            .enumerate()
            .filter(|(k, (_, h))| h.is_none() && !known.contains_key(k))
            .map(|(_, (i, _))| i),
        reporter,
    );
    // Largest first, so a big package does not start last and keep one thread busy alone at the end.
    let mut by_size: Vec<usize> = (0..lock.packages.len()).filter(|i| !known.contains_key(i)).collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(lock.packages[i].size));
    let shared: &T = target;
    let results = run_parallel(lock.packages.len(), &by_size, opts.jobs, |i| {
        let p = &lock.packages[i];
        if let (Some(db), Some(inst)) = (&host, installed[i]) {
            let tree = work.path().join(format!("host-{i}"));
            std::fs::create_dir(&tree).map_err(io("create directory", &tree))?;
            match db.copy_package(inst, &tree) {
                Ok(n) => {
                    tracing::info!(package = %p.key(), files = n, "copied from the host's dpkg database");
                    return Ok((shared.prepare(p, tree)?, true));
                }
                Err(e) => {
                    tracing::info!(package = %p.key(), "not taken from the host ({e}); downloading instead");
                    std::fs::remove_dir_all(&tree).ok();
                }
            }
        }
        let deb = fetch(http, cache, &items[i], reporter)?;
        let tree = work.path().join(format!("deb-{i}"));
        crate::deb::unpack(&deb, &tree)?;
        Ok((shared.prepare(p, tree)?, false))
    });
    reporter.finish();
    // The known packages were not attempted: fill their slots so that only a real gap counts as one.
    let results = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| if known.contains_key(&i) { Some(Ok(None)) } else { r.map(|r| r.map(Some)) })
        .collect();
    let mut prepared: Vec<Option<(T::Prepared, bool)>> = collect_results(results, "unpacking")?;
    let mut locations: HashMap<usize, String> = HashMap::new();
    let mut out = Vec::new();
    for i in order {
        let p = &lock.packages[i];
        let name = store_name(p, &opts.native_arch);
        if let Some(location) = known.remove(&i) {
            locations.insert(i, location.clone());
            out.push(Realised { package: p.key(), version: p.version.clone(), location, from_host: false });
            continue;
        }
        let (tree, from_host) = prepared[i]
            .take()
            .ok_or_else(|| Error::Realise { package: p.key(), reason: "no unpacked tree".into() })?;
        let refs: Vec<String> =
            edges.get(&i).into_iter().flatten().filter_map(|j| locations.get(j).cloned()).collect();
        let location = target.add(p, &name, tree, &refs)?;
        if !from_host {
            target.unpacked(p, &name, &refs, &location)?;
        }
        locations.insert(i, location.clone());
        out.push(Realised { package: p.key(), version: p.version.clone(), location, from_host });
    }
    target.finish()?;
    out.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, deps: &[&str]) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: "1:2.0~rc1-1".into(),
            architecture: "amd64".into(),
            repository: "http://127.0.0.1:1".into(),
            suite: "s".into(),
            filename: "pool/x.deb".into(),
            size: 1,
            sha256: "0".repeat(64),
            depends: deps.iter().map(|d| format!("{d}:amd64")).collect(),
            component: String::new(),
        }
    }

    #[test]
    fn dependencies_first_and_cycles_broken() {
        let lock = Lock {
            version: 1,
            request: vec![],
            packages: vec![
                pkg("app", &["libc6", "libfoo"]),
                pkg("libc6", &["libgcc"]),
                pkg("libfoo", &["libc6"]),
                pkg("libgcc", &["libc6"]),
            ],
        };
        let (order, edges) = topo_order(&lock);
        let names: Vec<&str> = order.iter().map(|&i| lock.packages[i].name.as_str()).collect();
        assert_eq!(names, ["libgcc", "libc6", "libfoo", "app"]);
        assert_eq!(edges[&0], [1, 2]);
        assert!(!edges.contains_key(&3), "the back edge libgcc -> libc6 is dropped");
        assert_eq!(store_name(&lock.packages[0], "amd64"), "app-1_2.0_rc1-1");
        assert_eq!(store_name(&lock.packages[0], "i386"), "app-1_2.0_rc1-1-amd64");
    }
}
