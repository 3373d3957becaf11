//! Copying between the local store and a binary cache (`nix copy --to` / `--from`). To a cache: the closure of
//! the given paths minus what the cache has, NARs compressed and uploaded several at once (largest first), then
//! the narinfos in dependency order, so a narinfo only ever appears after its NAR and after the narinfos of its
//! references. From a cache: [`Substituters`](crate::Substituters) with that one cache.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use store::{PathInfo, Store, StorePath};

use crate::Progress;
use crate::binary_cache::BinaryCache;
use crate::error::{CacheError, Result};
use crate::narinfo::NarInfo;
use crate::packages::PackageMapping;

/// Runs `f` on every item with at most `jobs` threads, returning the results in item order. Stops handing out
/// items after the first error when `stop_on_error`.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    stop_on_error: bool,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Option<Result<R>>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    if stop_on_error && failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// What a copy did.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// Paths written, in dependency order.
    pub copied: Vec<NarInfo>,
    /// Paths of the closure the destination already had.
    pub present: usize,
    /// Package mappings written (`crate::packages`).
    pub packages: usize,
}

/// Copies the closure of `paths` from `store` to `cache`; `jobs` NARs are compressed and uploaded at once.
/// `on_path` is told each path before its upload starts.
pub fn copy_to(
    store: &Store,
    cache: &BinaryCache,
    paths: &[StorePath],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let closure = store.closure(paths)?;
    let present = parallel_map(&closure, jobs.max(8), true, |p| cache.has(p));
    let mut missing: Vec<PathInfo> = Vec::new();
    let mut report = CopyReport::default();
    for (p, has) in closure.iter().zip(present) {
        match has {
            Some(Ok(true)) => report.present += 1,
            Some(Ok(false)) => {
                missing.push(store.path_info(p)?.ok_or_else(|| store::StoreError::NotValid(p.to_string()))?)
            }
            Some(Err(e)) => return Err(e),
            None => unreachable!("every item is processed unless an earlier one failed"),
        }
    }
    // Largest first, so the longest compression starts at once and the small ones fill in around it.
    let mut order: Vec<usize> = (0..missing.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(missing[i].nar_size));
    let results = parallel_map(&order, jobs, true, |&i| {
        let info = &missing[i];
        progress.start(&info.path, info.nar_size);
        let r = cache.upload_nar(store, info);
        progress.advance(&info.path, info.nar_size);
        progress.finish(&info.path);
        r
    });
    let mut narinfos: Vec<Option<NarInfo>> = vec![None; missing.len()];
    let mut first_error = None;
    for (&i, r) in order.iter().zip(results) {
        match r {
            Some(Ok(n)) => narinfos[i] = Some(n),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    // `missing` is in closure order (references first): write narinfos in that order up to the first failure.
    for n in narinfos {
        let Some(n) = n else { break };
        cache.write_narinfo(&n)?;
        report.copied.push(n);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    // The package map's entries for paths of the closure, now all in the cache, so that other machines find
    // the packages there instead of downloading them (`crate::packages`).
    let in_closure: std::collections::HashSet<&StorePath> = closure.iter().collect();
    for (key, path) in store.packages()? {
        if in_closure.contains(&path) && !cache.backend().exists(&PackageMapping::file_name(&key))? {
            cache.write_package_mapping(&PackageMapping::new(&key, path))?;
            report.packages += 1;
        }
    }
    Ok(report)
}

/// Adds signatures by `keys` to the narinfos of `paths` in `cache` (`nix store sign --store URL`); returns how
/// many signatures were added.
pub fn sign_in_cache(cache: &BinaryCache, paths: &[StorePath], keys: &[crate::SecretKey]) -> Result<usize> {
    let mut added = 0;
    for p in paths {
        let mut info = cache
            .narinfo(p)?
            .ok_or_else(|| CacheError::Missing { path: p.to_string(), url: cache.url().to_owned() })?;
        let before = info.sigs.clone();
        for k in keys {
            info.sign(k);
        }
        let new = info.sigs.difference(&before).count();
        if new > 0 {
            cache.write_narinfo(&info)?;
            added += new;
        }
    }
    Ok(added)
}
