//! Substitution: fetching store paths that are missing locally from the configured binary caches instead of
//! building or fetching them. For each path the caches are asked in priority order; a narinfo is accepted only
//! if it names the path asked for and is signed by a trusted key (unless `require-sigs` is off, the cache is
//! `trusted=true`, or the path is content-addressed, whose address the store checks itself). References are
//! substituted first; up to `max-substitution-jobs` NARs download at once, each streamed through its
//! decompressor straight into the store, which registers it only when its `NarHash` (and content address)
//! match. A cache that fails with a transport error is not asked again during the operation, and a path one
//! cache fails to deliver is tried on the next. Nothing here prints: the report lists what failed and why, and
//! the caller says so once and falls back.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Condvar, Mutex};

use store::{Store, StoreDir, StoreError, StorePath};

use crate::Progress;
use crate::backend::http::HttpClient;
use crate::binary_cache::{BinaryCache, Kind};
use crate::copy::parallel_map;
use crate::disk_cache::{Cached, DiskCache};
use crate::error::{CacheError, Result};
use crate::keys::{PublicKey, SecretKey, TrustedKeys};
use crate::narinfo::NarInfo;
use crate::settings::Settings;

struct Slot {
    cache: BinaryCache,
    disk_id: Option<i64>,
    /// Why this cache is not asked any more, once it failed with a transport error.
    disabled: Mutex<Option<String>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({})", self.cache.url())
    }
}

/// Paths to fetch: the path, the index of the cache that has it, its narinfo.
type Plan = Vec<(StorePath, usize, NarInfo)>;

/// The configured binary caches, ready to substitute from.
#[derive(Debug)]
pub struct Substituters {
    slots: Vec<Slot>,
    keys: TrustedKeys,
    require_sigs: bool,
    disk: Option<DiskCache>,
    positive_ttl: u64,
    negative_ttl: u64,
    jobs: usize,
    /// Caches that could not be opened (each skipped), as messages.
    pub open_errors: Vec<String>,
}

/// What a substitution did.
#[derive(Debug, Default)]
pub struct SubstitutionReport {
    /// Paths now valid, in the order they were registered.
    pub substituted: Vec<StorePath>,
    /// Paths (asked for, or needed by one) that no cache could provide, with the reason.
    pub failed: Vec<(StorePath, String)>,
    /// Problems met on the way, even where another cache then succeeded (bad signatures, transport errors,
    /// hash mismatches), one line each.
    pub problems: Vec<String>,
    /// Sum of the `FileSize`s and `NarSize`s of the paths fetched.
    pub download_size: u64,
    pub nar_size: u64,
}

/// The keys of `trusted-public-keys` plus the public halves of `secret-key-files`.
pub fn trusted_keys(settings: &Settings) -> Result<TrustedKeys> {
    let mut keys = TrustedKeys::default();
    for k in &settings.trusted_public_keys {
        keys.add(PublicKey::parse(k)?);
    }
    for f in &settings.secret_key_files {
        keys.add(SecretKey::read_file(f)?.public());
    }
    Ok(keys)
}

/// Reads a NAR stream while telling `progress`.
struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
    path: &'a StorePath,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(self.path, n as u64);
        Ok(n)
    }
}

impl Substituters {
    /// Opens every cache of `settings.substituters` for reading; one that cannot be opened is left out and
    /// named in `open_errors`. Bad keys in the settings are errors.
    pub fn open(settings: &Settings, store_dir: &StoreDir, http: &HttpClient) -> Result<Substituters> {
        let keys = trusted_keys(settings)?;
        let mut caches = Vec::new();
        let mut open_errors = Vec::new();
        if settings.substitute {
            for url in &settings.substituters {
                match BinaryCache::open(url, store_dir, http, false) {
                    Ok(c) => caches.push(c),
                    Err(e) => open_errors.push(format!("cannot use binary cache '{url}': {e}")),
                }
            }
        }
        let remote = caches.iter().any(|c| *c.kind() != Kind::File);
        let disk = match (&settings.narinfo_cache_dir, remote) {
            (Some(dir), true) => match DiskCache::open(dir) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::debug!("no narinfo disk cache: {e}");
                    None
                }
            },
            _ => None,
        };
        let mut s =
            Substituters::with_caches(caches, keys, settings.require_sigs, settings.max_substitution_jobs);
        s.positive_ttl = settings.narinfo_cache_positive_ttl;
        s.negative_ttl = settings.narinfo_cache_negative_ttl;
        s.open_errors = open_errors;
        if let Some(d) = disk {
            for slot in &mut s.slots {
                if *slot.cache.kind() != Kind::File {
                    let c = &slot.cache;
                    slot.disk_id = d
                        .cache_id(c.url(), c.store_dir(), c.params.want_mass_query, c.params.priority)
                        .map_err(|e| tracing::debug!("narinfo disk cache: {e}"))
                        .ok();
                }
            }
            s.disk = Some(d);
        }
        Ok(s)
    }

    /// Substituters over already opened caches (sorted here by priority, lower first).
    pub fn with_caches(
        mut caches: Vec<BinaryCache>,
        keys: TrustedKeys,
        require_sigs: bool,
        jobs: usize,
    ) -> Substituters {
        caches.sort_by_key(|c| c.params.priority);
        let defaults = Settings::default();
        Substituters {
            slots: caches
                .into_iter()
                .map(|cache| Slot { cache, disk_id: None, disabled: Mutex::new(None) })
                .collect(),
            keys,
            require_sigs,
            disk: None,
            positive_ttl: defaults.narinfo_cache_positive_ttl,
            negative_ttl: defaults.narinfo_cache_negative_ttl,
            jobs: jobs.max(1),
            open_errors: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn urls(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.cache.url()).collect()
    }

    fn disable(&self, slot: &Slot, why: &str) {
        let mut d = slot.disabled.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_none() {
            *d = Some(why.to_owned());
        }
    }

    fn is_disabled(&self, slot: &Slot) -> bool {
        slot.disabled.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The narinfo of `path` in one cache, through the disk cache for remote ones.
    fn query(&self, slot: &Slot, path: &StorePath) -> Result<Option<NarInfo>> {
        let cached = match (&self.disk, slot.disk_id) {
            (Some(d), Some(id)) => Some((d, id)),
            _ => None,
        };
        if let Some((d, id)) = cached {
            match d.lookup(id, path.hash_part(), slot.cache.store_dir(), self.positive_ttl, self.negative_ttl)
            {
                Ok(Cached::Present(info)) if info.path == *path => return Ok(Some(*info)),
                Ok(Cached::Absent) => return Ok(None),
                Ok(_) => {}
                Err(e) => tracing::debug!("narinfo disk cache: {e}"),
            }
        }
        let info = slot.cache.narinfo(path)?;
        if let Some((d, id)) = cached
            && let Err(e) = d.insert(id, path.hash_part(), info.as_ref())
        {
            tracing::debug!("narinfo disk cache: {e}");
        }
        Ok(info)
    }

    /// The first acceptable narinfo for `path` from the caches at index `from` onwards.
    fn lookup(
        &self,
        path: &StorePath,
        from: usize,
        problems: &Mutex<Vec<String>>,
    ) -> Option<(usize, NarInfo)> {
        for (i, slot) in self.slots.iter().enumerate().skip(from) {
            if self.is_disabled(slot) {
                continue;
            }
            match self.query(slot, path) {
                Ok(None) => {}
                Ok(Some(info)) => {
                    let acceptable = slot.cache.params.trusted
                        || !self.require_sigs
                        || info.ca.is_some()
                        || info.valid_signatures(&self.keys) > 0;
                    if acceptable {
                        return Some((i, info));
                    }
                    let e = CacheError::Unsigned { path: path.to_string(), url: slot.cache.url().to_owned() };
                    push(problems, e.to_string());
                }
                Err(e) => {
                    if matches!(e, CacheError::Transfer { .. }) {
                        self.disable(slot, &e.to_string());
                    }
                    push(problems, e.to_string());
                }
            }
        }
        None
    }

    /// The narinfos of the missing paths among `paths` and their references, found level by level with
    /// parallel queries. Returns (plan, unavailable).
    fn plan(
        &self,
        store: &Store,
        paths: &[StorePath],
        problems: &Mutex<Vec<String>>,
    ) -> Result<(Plan, HashMap<StorePath, String>)> {
        let mut seen: HashSet<StorePath> = HashSet::new();
        let mut level: Vec<StorePath> = Vec::new();
        for p in paths {
            if !store.is_valid(p)? && seen.insert(p.clone()) {
                level.push(p.clone());
            }
        }
        let mut plan = Vec::new();
        let mut unavailable = HashMap::new();
        while !level.is_empty() {
            let found = parallel_map(&level, self.jobs, false, |p| Ok(self.lookup(p, 0, problems)));
            let mut next = Vec::new();
            for (p, r) in level.iter().zip(found) {
                match r {
                    Some(Ok(Some((i, info)))) => {
                        for r in &info.references {
                            if r != p && !seen.contains(r) && !store.is_valid(r)? {
                                seen.insert(r.clone());
                                next.push(r.clone());
                            }
                        }
                        plan.push((p.clone(), i, info));
                    }
                    _ => {
                        unavailable.insert(
                            p.clone(),
                            format!("path '{p}' is required, but there is no substituter that can build it"),
                        );
                    }
                }
            }
            level = next;
        }
        Ok((plan, unavailable))
    }

    /// Downloads one path from cache `i`, then from later caches that have it, until one succeeds.
    fn fetch(
        &self,
        store: &Store,
        path: &StorePath,
        mut i: usize,
        mut info: NarInfo,
        progress: &dyn Progress,
        problems: &Mutex<Vec<String>>,
    ) -> std::result::Result<NarInfo, String> {
        loop {
            let slot = &self.slots[i];
            progress.start(path, info.nar_size);
            let result = slot.cache.nar(&info).and_then(|reader| {
                let mut reader = Counting { inner: reader, progress, path };
                store.add_substitute(&mut reader, info.to_metadata()).map_err(|e| match e {
                    StoreError::HashMismatch { expected, got, .. } => CacheError::Mismatch {
                        what: "hash",
                        path: path.to_string(),
                        url: slot.cache.url().to_owned(),
                        expected,
                        got,
                    },
                    StoreError::Nar(store::nar::NarError::Read(e)) => CacheError::Transfer {
                        action: "download the NAR of",
                        url: format!("{} from {}", path, slot.cache.url()),
                        reason: e.to_string(),
                    },
                    e => CacheError::Store(e),
                })
            });
            progress.finish(path);
            match result {
                Ok(_) => return Ok(info),
                Err(e) => {
                    if matches!(e, CacheError::Transfer { .. }) {
                        self.disable(slot, &e.to_string());
                    }
                    let msg = format!("cannot substitute '{path}' from '{}': {e}", slot.cache.url());
                    push(problems, msg.clone());
                    match self.lookup(path, i + 1, problems) {
                        Some((j, next)) => {
                            i = j;
                            info = next;
                        }
                        None => return Err(msg),
                    }
                }
            }
        }
    }

    /// Makes `paths` (and their references) valid in `store` from the caches, as far as they can. Paths
    /// already valid are left alone.
    pub fn substitute(
        &self,
        store: &Store,
        paths: &[StorePath],
        progress: &dyn Progress,
    ) -> Result<SubstitutionReport> {
        let problems = Mutex::new(Vec::new());
        let mut report = SubstitutionReport::default();
        if self.slots.is_empty() {
            for p in paths {
                if !store.is_valid(p)? {
                    report.failed.push((
                        p.clone(),
                        format!("path '{p}' is required, but no substituter is configured"),
                    ));
                }
            }
            return Ok(report);
        }
        let (plan, mut unavailable) = self.plan(store, paths, &problems)?;
        let index: HashMap<&StorePath, usize> =
            plan.iter().enumerate().map(|(k, (p, _, _))| (p, k)).collect();
        // A path whose reference cannot be had cannot be registered either.
        let mut failed: Vec<Option<String>> = vec![None; plan.len()];
        loop {
            let mut changed = false;
            for (k, (p, _, info)) in plan.iter().enumerate() {
                if failed[k].is_some() {
                    continue;
                }
                let bad_ref = info.references.iter().filter(|r| *r != p).find(|r| {
                    unavailable.contains_key(*r) || index.get(r).is_some_and(|&j| failed[j].is_some())
                });
                if let Some(r) = bad_ref {
                    failed[k] =
                        Some(format!("cannot substitute '{p}': its reference '{r}' cannot be substituted"));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let todo: Vec<usize> = (0..plan.len()).filter(|&k| failed[k].is_none()).collect();
        let mut deps = vec![0usize; plan.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); plan.len()];
        for &k in &todo {
            let (p, _, info) = &plan[k];
            for r in info.references.iter().filter(|r| *r != p) {
                if let Some(&j) = index.get(r) {
                    deps[k] += 1;
                    dependents[j].push(k);
                }
            }
        }
        struct State {
            ready: Vec<usize>,
            deps: Vec<usize>,
            failed: Vec<Option<String>>,
            finished: usize,
            done: Vec<usize>,
        }
        let state = Mutex::new(State {
            ready: todo.iter().copied().filter(|&k| deps[k] == 0).collect(),
            deps,
            failed,
            finished: 0,
            done: Vec::new(),
        });
        let wake = Condvar::new();
        let total = todo.len();
        std::thread::scope(|s| {
            for _ in 0..self.jobs.min(total).max(1) {
                s.spawn(|| {
                    loop {
                        let k = {
                            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                            loop {
                                if st.finished >= total {
                                    return;
                                }
                                if let Some(k) = st.ready.pop() {
                                    break k;
                                }
                                st = wake.wait(st).unwrap_or_else(|p| p.into_inner());
                            }
                        };
                        let (p, i, info) = &plan[k];
                        let outcome = self.fetch(store, p, *i, info.clone(), progress, &problems);
                        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                        st.finished += 1;
                        match outcome {
                            Ok(_) => {
                                st.done.push(k);
                                for &d in &dependents[k] {
                                    st.deps[d] -= 1;
                                    if st.deps[d] == 0 && st.failed[d].is_none() {
                                        st.ready.push(d);
                                    }
                                }
                            }
                            Err(msg) => {
                                st.failed[k] = Some(msg);
                                // Everything depending on it fails too, and counts as finished.
                                let mut stack = dependents[k].clone();
                                while let Some(d) = stack.pop() {
                                    if st.failed[d].is_none() {
                                        st.failed[d] = Some(format!(
                                            "cannot substitute '{}': its reference '{p}' could not be substituted",
                                            plan[d].0
                                        ));
                                        st.finished += 1;
                                        stack.extend(dependents[d].iter().copied());
                                    }
                                }
                            }
                        }
                        wake.notify_all();
                    }
                });
            }
        });
        let st = state.into_inner().unwrap_or_else(|p| p.into_inner());
        for &k in &st.done {
            let info = &plan[k].2;
            report.substituted.push(plan[k].0.clone());
            report.download_size += info.file_size;
            report.nar_size += info.nar_size;
        }
        for (k, f) in st.failed.into_iter().enumerate() {
            if let Some(msg) = f {
                unavailable.insert(plan[k].0.clone(), msg);
            }
        }
        let mut failed: Vec<(StorePath, String)> = unavailable.into_iter().collect();
        failed.sort();
        report.failed = failed;
        report.problems = problems.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok(report)
    }

    /// True if and only if some cache has an acceptable narinfo for `path` (asks the caches, through the disk
    /// cache; fetches nothing).
    pub fn has(&self, path: &StorePath) -> bool {
        self.lookup(path, 0, &Mutex::new(Vec::new())).is_some()
    }

    /// The store path the first cache with an acceptable mapping gives for the package `key`
    /// ([`crate::packages`]): signed by a trusted key, unless `require-sigs` is off or the cache is `trusted`.
    /// Unusable mappings and transport errors are added to `problems` (a transport error disables the cache).
    pub fn find_package(&self, key: &str, problems: &mut Vec<String>) -> Option<StorePath> {
        for slot in self.slots.iter().filter(|s| !self.is_disabled(s)) {
            match slot.cache.package_mapping(key) {
                Ok(None) => {}
                Ok(Some(m)) => {
                    if slot.cache.params.trusted || !self.require_sigs || m.valid_signatures(&self.keys) > 0 {
                        return Some(m.path);
                    }
                    problems.push(format!(
                        "the package mapping '{key}' from '{}' is not signed by any of the keys in \
                         'trusted-public-keys'",
                        slot.cache.url()
                    ));
                }
                Err(e) => {
                    if matches!(e, CacheError::Transfer { .. }) {
                        self.disable(slot, &e.to_string());
                    }
                    problems.push(e.to_string());
                }
            }
        }
        None
    }

    /// The build log of `path` (a derivation, or an output whose narinfo names its deriver; `drvs` are further
    /// derivations known locally) from the first cache that has one (`nix log` with substituters).
    pub fn log(&self, path: &StorePath, drvs: &[StorePath]) -> Option<String> {
        for slot in self.slots.iter().filter(|s| !self.is_disabled(s)) {
            let mut candidates: Vec<StorePath> = drvs.to_vec();
            if path.is_derivation() {
                candidates.push(path.clone());
            } else if let Ok(Some(info)) = self.query(slot, path)
                && let Some(d) = info.deriver
            {
                candidates.push(d);
            }
            for d in &candidates {
                if let Ok(Some(text)) = slot.cache.log(d) {
                    return Some(text);
                }
            }
        }
        None
    }

    /// What a substitution of `paths` would fetch: the narinfos of the missing paths and their missing
    /// references (for "these N paths will be fetched" lines), and the paths no cache has.
    pub fn query_missing(
        &self,
        store: &Store,
        paths: &[StorePath],
    ) -> Result<(Vec<NarInfo>, Vec<StorePath>)> {
        let problems = Mutex::new(Vec::new());
        let (plan, unavailable) = self.plan(store, paths, &problems)?;
        let mut missing: Vec<StorePath> = unavailable.into_keys().collect();
        missing.sort();
        Ok((plan.into_iter().map(|(_, _, i)| i).collect(), missing))
    }
}

fn push(problems: &Mutex<Vec<String>>, msg: String) {
    let mut p = problems.lock().unwrap_or_else(|p| p.into_inner());
    if !p.contains(&msg) {
        p.push(msg);
    }
}
