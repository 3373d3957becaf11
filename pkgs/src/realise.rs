//! Realisation: turning a lock file into one unpacked tree per package handed to a [`Target`] (the store, through
//! the CLI, or a plain directory), dependencies first so each package can reference its dependencies' paths.
//!
//! Packages the host has installed at the same version are copied from the host (verified by MD5); the rest are
//! downloaded ([`crate::fetch`]), verified, and unpacked ([`crate::deb`]) in parallel into scratch directories in
//! the cache. Dependency cycles (libc6 and libgcc-s1 depend on each other) are broken at the back edge: a package
//! cannot reference a path that needs its own path first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cache::Cache;
use crate::error::{Error, Result, io};
use crate::fetch::{FetchItem, Reporter, fetch_all};
use crate::host::HostDb;
use crate::http::Http;
use crate::lock::{Lock, LockedPackage};

/// Where realised packages go.
pub trait Target {
    /// Takes the unpacked tree of `pkg` (it may move or copy it) with the locations of its dependencies, and
    /// returns the package's location (a store path, a directory).
    fn add(&mut self, pkg: &LockedPackage, name: &str, tree: &Path, references: &[String]) -> Result<String>;
}

/// A target that moves each tree to `<dir>/<name>` (the `--into` option; no store involved).
#[derive(Debug)]
pub struct DirTarget {
    pub dir: PathBuf,
}

impl Target for DirTarget {
    fn add(
        &mut self,
        _pkg: &LockedPackage,
        name: &str,
        tree: &Path,
        _references: &[String],
    ) -> Result<String> {
        std::fs::create_dir_all(&self.dir).map_err(io("create directory", &self.dir))?;
        // Absolute, so the printed location is usable from any directory.
        let dir = std::fs::canonicalize(&self.dir).map_err(io("resolve directory", &self.dir))?;
        let dest = dir.join(name);
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(io("replace", &dest))?;
        }
        std::fs::rename(tree, &dest).map_err(io("move package tree to", &dest))?;
        Ok(dest.display().to_string())
    }
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
pub fn realise(
    http: &Http,
    cache: &Cache,
    lock: &Lock,
    opts: &RealiseOptions,
    reporter: &dyn Reporter,
    target: &mut dyn Target,
) -> Result<Vec<Realised>> {
    let scratch = cache.scratch_dir()?;
    let work = tempfile::Builder::new()
        .prefix("realise-")
        .tempdir_in(&scratch)
        .map_err(io("create directory in", &scratch))?;
    let host = match &opts.host_root {
        Some(root) => HostDb::load(root)?,
        None => None,
    };
    let mut trees: HashMap<usize, PathBuf> = HashMap::new();
    let mut from_host: HashSet<usize> = HashSet::new();
    if let Some(db) = &host {
        for (i, p) in lock.packages.iter().enumerate() {
            let Some(installed) = db.find(&p.name, &p.architecture, &p.version) else { continue };
            let tree = work.path().join(format!("host-{i}"));
            std::fs::create_dir(&tree).map_err(io("create directory", &tree))?;
            match db.copy_package(installed, &tree) {
                Ok(n) => {
                    tracing::info!(package = %p.key(), files = n, "copied from the host's dpkg database");
                    trees.insert(i, tree);
                    from_host.insert(i);
                }
                Err(e) => {
                    tracing::info!(package = %p.key(), "not taken from the host ({e}); downloading instead");
                    std::fs::remove_dir_all(&tree).ok();
                }
            }
        }
    }
    let wanted: Vec<usize> = (0..lock.packages.len()).filter(|i| !trees.contains_key(i)).collect();
    let items: Vec<FetchItem> = wanted
        .iter()
        .map(|&i| {
            let p = &lock.packages[i];
            FetchItem { label: p.key(), url: p.url(), size: p.size, sha256: p.sha256.clone() }
        })
        .collect();
    let debs = fetch_all(http, cache, &items, opts.jobs, reporter)?;
    // Unpack in parallel: xz and zstd decoding is the expensive part.
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<PathBuf>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, 8).min(wanted.len().max(1)) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let (Some(&i), Some(deb)) = (wanted.get(k), debs.get(k)) else { break };
                    let tree = work.path().join(format!("deb-{i}"));
                    let r = crate::deb::unpack(deb, &tree).map(|_| tree);
                    if let Ok(mut v) = results.lock() {
                        v.push((i, r));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().map_err(|_| Error::Unpack {
        path: work.path().to_owned(),
        reason: "unpack worker panicked".into(),
    })?;
    results.sort_by_key(|(i, _)| *i);
    for (i, r) in results {
        trees.insert(i, r?);
    }
    let (order, edges) = topo_order(lock);
    let mut locations: HashMap<usize, String> = HashMap::new();
    let mut out = Vec::new();
    for i in order {
        let p = &lock.packages[i];
        let tree = trees
            .get(&i)
            .ok_or_else(|| Error::Realise { package: p.key(), reason: "no unpacked tree".into() })?;
        let refs: Vec<String> =
            edges.get(&i).into_iter().flatten().filter_map(|j| locations.get(j).cloned()).collect();
        let location = target.add(p, &store_name(p, &opts.native_arch), tree, &refs)?;
        locations.insert(i, location.clone());
        out.push(Realised {
            package: p.key(),
            version: p.version.clone(),
            location,
            from_host: from_host.contains(&i),
        });
    }
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
