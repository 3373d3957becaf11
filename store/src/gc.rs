//! Garbage collection. Roots are the symlinks under `gcroots/` and `profiles/` (direct when they point into the
//! store, indirect when they point to a link elsewhere, `gcroots/auto/<nix32(sha1(link))>` as Nix names them, with
//! stale indirect roots removed), temporary roots of running store users, and store paths that running processes
//! hold open (`/proc/*/{exe,cwd,fd/*,maps}`). Liveness is computed over the whole reference graph in memory;
//! deletion unregisters in one transaction first, then renames into a trash directory, then deletes, so an
//! interrupted collection leaves only unregistered leftovers that the next one removes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::db::Graph;
use crate::error::{Result, StoreError, io_err};
use crate::fsutil;
use crate::hash::{Hash, HashAlgo};
use crate::local::Store;
use crate::roots;
use crate::store_path::StorePath;

/// A GC root: a link (or `/proc/…` entry, or `{temp}`) and the store path it keeps alive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Root {
    pub link: PathBuf,
    pub target: StorePath,
}

/// How the collector decides liveness; the defaults are Nix's (`keep-derivations = true`, `keep-outputs = false`).
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Keep the deriver of every live path.
    pub keep_derivations: bool,
    /// Keep the outputs of every live derivation.
    pub keep_outputs: bool,
    /// Stop once at least this many bytes have been freed.
    pub max_freed: Option<u64>,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions { keep_derivations: true, keep_outputs: false, max_freed: None }
    }
}

/// What a collection or deletion removed.
#[derive(Debug, Clone, Default)]
pub struct GcResult {
    pub deleted: Vec<StorePath>,
    /// Unregistered leftovers (interrupted adds or collections) removed from the store directory.
    pub leftovers: Vec<PathBuf>,
    pub bytes_freed: u64,
}

/// The name Nix gives an indirect root for `link` in `gcroots/auto`.
pub fn auto_root_name(link: &Path) -> String {
    Hash::digest(HashAlgo::Sha1, link.as_os_str().as_encoded_bytes()).to_nix32()
}

fn symlink_replace(target: &Path, link: &Path) -> Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let tmp = dir.join(fsutil::unique_name(".tmp-link"));
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err("create symlink", &tmp))?;
    fs::rename(&tmp, link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("replace symlink", link)(e)
    })
}

impl Store {
    /// Makes `link` a symlink to `target` and registers it as a GC root: a link inside `gcroots/` or `profiles/`
    /// is a root by itself; any other gets an indirect root `gcroots/auto/<nix32(sha1(link))> -> link`, as Nix's
    /// `--add-root` does, so the target lives as long as the link does.
    pub fn add_root(&self, link: &Path, target: &StorePath) -> Result<()> {
        let _lock = self.lock_writers()?;
        if !self.is_valid(target)? {
            return Err(StoreError::NotValid(target.to_string()));
        }
        let link = if link.is_absolute() {
            link.to_path_buf()
        } else {
            std::env::current_dir().map_err(io_err("find the current directory for", link))?.join(link)
        };
        symlink_replace(&target.to_absolute(), &link)?;
        if !(link.starts_with(self.state_dir().join("gcroots"))
            || link.starts_with(self.state_dir().join("profiles")))
        {
            let auto = self.state_dir().join("gcroots/auto").join(auto_root_name(&link));
            symlink_replace(&link, &auto)?;
        }
        Ok(())
    }

    /// The store path `text` names or lies inside (logical, or physical under the root prefix).
    pub(crate) fn store_path_in(&self, text: &str) -> Option<StorePath> {
        if let Ok((p, _)) = self.store_dir().parse_path_prefix(text) {
            return Some(p);
        }
        let phys = self.physical_store_dir().to_string_lossy().into_owned();
        let rest = text.strip_prefix(&phys)?.strip_prefix('/')?;
        let base = rest.split('/').next()?;
        self.store_dir().from_base_name(base).ok()
    }

    fn scan_root_dir(&self, dir: &Path, auto_dir: &Path, out: &mut Vec<Root>) -> Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("list GC roots in", dir)(e)),
        };
        for entry in rd {
            let entry = entry.map_err(io_err("list GC roots in", dir))?;
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            if meta.is_dir() {
                self.scan_root_dir(&path, auto_dir, out)?;
                continue;
            }
            if !meta.is_symlink() {
                continue;
            }
            let Ok(target) = fs::read_link(&path) else { continue };
            if let Some(p) = self.store_path_in(&target.to_string_lossy()) {
                out.push(Root { link: path, target: p });
                continue;
            }
            let indirect = dir.join(&target);
            match fs::symlink_metadata(&indirect) {
                Err(_) if path.starts_with(auto_dir) => {
                    tracing::info!(
                        "removing stale link from '{}' to '{}'",
                        path.display(),
                        indirect.display()
                    );
                    let _ = fs::remove_file(&path);
                }
                Ok(m) if m.is_symlink() => {
                    if let Some(p) =
                        fs::read_link(&indirect).ok().and_then(|t| self.store_path_in(&t.to_string_lossy()))
                    {
                        out.push(Root { link: indirect, target: p });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The permanent roots (`gcroots/`, `profiles/`) and the runtime roots (paths running processes use).
    /// Roots whose target is not valid are left out.
    pub fn find_roots(&self) -> Result<Vec<Root>> {
        let mut out = Vec::new();
        let auto = self.state_dir().join("gcroots/auto");
        self.scan_root_dir(&self.state_dir().join("gcroots"), &auto, &mut out)?;
        self.scan_root_dir(&self.state_dir().join("profiles"), &auto, &mut out)?;
        out.extend(self.runtime_roots());
        let mut valid = Vec::new();
        for r in out {
            if self.is_valid(&r.target)? {
                valid.push(r);
            }
        }
        valid.sort();
        valid.dedup();
        Ok(valid)
    }

    /// Store paths that running processes have open, mapped, as executable or as working directory.
    fn runtime_roots(&self) -> Vec<Root> {
        let mut out = Vec::new();
        let Ok(procs) = fs::read_dir("/proc") else { return out };
        for p in procs.flatten() {
            let name = p.file_name();
            if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let dir = p.path();
            let mut consider = |link: PathBuf, text: &str| {
                if let Some(t) = self.store_path_in(text) {
                    out.push(Root { link, target: t });
                }
            };
            for what in ["exe", "cwd"] {
                if let Ok(t) = fs::read_link(dir.join(what)) {
                    consider(dir.join(what), &t.to_string_lossy());
                }
            }
            if let Ok(fds) = fs::read_dir(dir.join("fd")) {
                for fd in fds.flatten() {
                    if let Ok(t) = fs::read_link(fd.path()) {
                        consider(fd.path(), &t.to_string_lossy());
                    }
                }
            }
            if let Ok(maps) = fs::read_to_string(dir.join("maps")) {
                for line in maps.lines() {
                    if let Some(i) = line.find('/') {
                        consider(dir.join("maps"), &line[i..]);
                    }
                }
            }
        }
        out
    }

    fn live_set(&self, graph: &Graph, options: &GcOptions) -> Result<Vec<bool>> {
        let mut start: Vec<usize> = Vec::new();
        for r in self.find_roots()? {
            if let Some(&i) = graph.index.get(&r.target) {
                start.push(i);
            }
        }
        for t in roots::read_temp_roots(&self.state_dir().join("temproots"))? {
            if let Some(i) = self.store_path_in(&t).and_then(|p| graph.index.get(&p).copied()) {
                start.push(i);
            }
        }
        let mut live = vec![false; graph.paths.len()];
        let mut stack = start;
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut live[i], true) {
                continue;
            }
            stack.extend(graph.references[i].iter().copied().filter(|&r| !live[r]));
            if options.keep_derivations
                && let Some(d) = graph.deriver[i].as_ref().and_then(|d| graph.index.get(d))
            {
                stack.push(*d);
            }
            if options.keep_outputs
                && let Some(outs) = graph.outputs.get(&i)
            {
                stack.extend(outs.iter().filter_map(|o| graph.index.get(o).copied()));
            }
        }
        Ok(live)
    }

    /// The live paths, sorted.
    pub fn live_paths(&self, options: &GcOptions) -> Result<Vec<StorePath>> {
        let _lock = self.lock_collector()?;
        let graph = self.db().graph()?;
        let live = self.live_set(&graph, options)?;
        Ok(graph.paths.iter().zip(live).filter(|(_, l)| *l).map(|(p, _)| p.clone()).collect())
    }

    /// The dead paths, sorted.
    pub fn dead_paths(&self, options: &GcOptions) -> Result<Vec<StorePath>> {
        let _lock = self.lock_collector()?;
        let graph = self.db().graph()?;
        let live = self.live_set(&graph, options)?;
        Ok(graph.paths.iter().zip(live).filter(|(_, l)| !*l).map(|(p, _)| p.clone()).collect())
    }

    /// Deletes every dead path (up to `max_freed` bytes, referrers before their references) and removes
    /// unregistered leftovers of interrupted operations.
    pub fn collect_garbage(&self, options: &GcOptions) -> Result<GcResult> {
        let _lock = self.lock_collector()?;
        let graph = self.db().graph()?;
        let live = self.live_set(&graph, options)?;
        let dead: Vec<usize> = (0..graph.paths.len()).filter(|&i| !live[i]).collect();
        let order = referrers_first(&graph, &dead);
        let mut chosen = Vec::new();
        let mut budget = 0u64;
        for i in order {
            if options.max_freed.is_some_and(|m| budget >= m) {
                break;
            }
            budget += graph.nar_size[i];
            chosen.push(graph.paths[i].clone());
        }
        let mut result = self.delete_unlocked(&chosen)?;
        if options.max_freed.is_none_or(|m| result.bytes_freed < m) {
            let (leftovers, bytes) = self.remove_leftovers(&graph)?;
            result.leftovers = leftovers;
            result.bytes_freed += bytes;
        }
        Ok(result)
    }

    /// Deletes `paths` and whatever dead paths refer to them; refuses if any of them is alive.
    pub fn delete_paths(&self, paths: &[StorePath], options: &GcOptions) -> Result<GcResult> {
        let _lock = self.lock_collector()?;
        let graph = self.db().graph()?;
        let live = self.live_set(&graph, options)?;
        let mut set = BTreeSet::new();
        for p in paths {
            let &i = graph.index.get(p).ok_or_else(|| StoreError::NotValid(p.to_string()))?;
            let mut stack = vec![i];
            while let Some(j) = stack.pop() {
                if live[j] {
                    return Err(if j == i {
                        StoreError::Alive(p.to_string())
                    } else {
                        StoreError::Referenced { path: p.to_string(), referrer: graph.paths[j].to_string() }
                    });
                }
                if set.insert(j) {
                    stack.extend(graph.referrers[j].iter().copied());
                }
            }
        }
        let set: Vec<usize> = set.into_iter().collect();
        let chosen: Vec<StorePath> =
            referrers_first(&graph, &set).into_iter().map(|i| graph.paths[i].clone()).collect();
        self.delete_unlocked(&chosen)
    }

    /// Unregisters (one transaction), renames into a trash directory, deletes. The caller holds the collector lock.
    fn delete_unlocked(&self, paths: &[StorePath]) -> Result<GcResult> {
        if paths.is_empty() {
            return Ok(GcResult::default());
        }
        self.db().unregister(paths)?;
        let trash = self.physical_store_dir().join(fsutil::unique_name(".trash"));
        fs::create_dir(&trash).map_err(io_err("create directory", &trash))?;
        for p in paths {
            let phys = self.physical_path(p);
            match fsutil::rename(&phys, &trash.join(p.base_name())) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("move to the trash", &phys)(e)),
            }
        }
        let bytes = remove_parallel(&trash)?;
        Ok(GcResult { deleted: paths.to_vec(), leftovers: Vec::new(), bytes_freed: bytes })
    }

    /// Removes the temporary entries (`.tmp-<pid>-…`, `.trash-<pid>-…`) of processes that no longer run: copies
    /// of adds and imports that were killed, trash of interrupted collections. Safe under the shared writer lock:
    /// a live process's entries are left alone. Returns what was removed.
    pub fn remove_stale_temporaries(&self) -> Result<Vec<PathBuf>> {
        let dir = self.physical_store_dir();
        let mut removed = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err("list", dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(".tmp-") || name.starts_with(".trash-")) {
                continue;
            }
            if roots::owner_pid(&name).is_some_and(|pid| !roots::pid_alive(pid)) {
                tracing::debug!(path = ?e.path(), "removing the temporary entry of a dead process");
                remove_parallel(&e.path())?;
                removed.push(e.path());
            }
        }
        Ok(removed)
    }

    /// Entries of the store directory named like store paths that are neither valid nor a temporary root of a
    /// running process.
    pub fn unregistered_entries(&self) -> Result<Vec<PathBuf>> {
        let dir = self.physical_store_dir();
        let temp: HashSet<String> =
            roots::read_temp_roots(&self.state_dir().join("temproots"))?.into_iter().collect();
        let mut found = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err("list", dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(p) = self.store_dir().from_base_name(&name)
                && !temp.contains(&p.to_string())
                && !self.is_valid(&p)?
            {
                found.push(e.path());
            }
        }
        found.sort();
        Ok(found)
    }

    /// Removes entries of the store directory that are not valid: partial adds of dead processes, trash of
    /// interrupted collections, and paths unregistered but not yet deleted.
    fn remove_leftovers(&self, graph: &Graph) -> Result<(Vec<PathBuf>, u64)> {
        let dir = self.physical_store_dir();
        let temp: HashSet<String> =
            roots::read_temp_roots(&self.state_dir().join("temproots"))?.into_iter().collect();
        let mut removed = Vec::new();
        let mut bytes = 0;
        for e in fs::read_dir(dir).map_err(io_err("list", dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let garbage = if name == ".links" {
                bytes += remove_unused_links(&e.path())?;
                false
            } else if name.starts_with(".tmp-") || name.starts_with(".trash-") {
                // Nothing is being added while the collector lock is held, not even by this process.
                roots::owner_pid(&name)
                    .is_none_or(|pid| pid == std::process::id() as i32 || !roots::pid_alive(pid))
            } else {
                match self.store_dir().from_base_name(&name) {
                    Ok(p) => !graph.index.contains_key(&p) && !temp.contains(&p.to_string()),
                    Err(_) => false,
                }
            };
            if garbage {
                bytes += remove_parallel(&e.path())?;
                removed.push(e.path());
            }
        }
        Ok((removed, bytes))
    }
}

/// Removes files of `.links` that no store object shares any more (link count 1).
fn remove_unused_links(links: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0;
    for e in fs::read_dir(links).map_err(io_err("list", links))?.flatten() {
        if let Ok(m) = e.metadata()
            && m.nlink() == 1
        {
            fs::remove_file(e.path()).map_err(io_err("remove", e.path()))?;
            bytes += m.len();
        }
    }
    Ok(bytes)
}

/// Removes a tree, the top-level entries in parallel; returns the bytes freed.
fn remove_parallel(path: &Path) -> Result<u64> {
    use rayon::prelude::*;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(0),
    };
    if !meta.is_dir() {
        return fsutil::remove_tree(path);
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io_err("make writable", path))?;
    let entries: Vec<PathBuf> =
        fs::read_dir(path).map_err(io_err("list", path))?.flatten().map(|e| e.path()).collect();
    let bytes: u64 =
        entries.par_iter().map(|e| fsutil::remove_tree(e)).collect::<Result<Vec<u64>>>()?.into_iter().sum();
    fs::remove_dir(path).map_err(io_err("remove directory", path))?;
    Ok(bytes)
}

/// Orders `subset` so that every path comes before the paths it refers to (ties in path order).
fn referrers_first(graph: &Graph, subset: &[usize]) -> Vec<usize> {
    let in_set: BTreeMap<usize, ()> = subset.iter().map(|&i| (i, ())).collect();
    let mut seen = vec![false; graph.paths.len()];
    let mut order = Vec::with_capacity(subset.len());
    for &s in subset {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        let mut stack: Vec<(usize, usize)> = vec![(s, 0)];
        while let Some((node, next)) = stack.last_mut() {
            let refs = &graph.references[*node];
            if *next < refs.len() {
                let c = refs[*next];
                *next += 1;
                if in_set.contains_key(&c) && !seen[c] {
                    seen[c] = true;
                    stack.push((c, 0));
                }
            } else {
                order.push(*node);
                stack.pop();
            }
        }
    }
    order.reverse();
    order
}
