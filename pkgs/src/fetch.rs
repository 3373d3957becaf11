//! Downloading `.deb` files into the content cache: several at once, resumable (`Range` into `.part` files),
//! each checked against the SHA-256 and size the signed index lists before it enters the cache under its hash.
//! A cached file is re-hashed before every use, so a corrupted cache entry is replaced, never unpacked.
//!
//! Progress goes through [`Reporter`]; the CLI implements it with a progress bar, the library never prints.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::cache::Cache;
use crate::error::{Error, Result, io};
use crate::http::Http;

/// Receives progress of a batch of downloads; all methods may be called from several threads.
pub trait Reporter: Send + Sync {
    /// Called once before downloading with the number of files and bytes that must be downloaded.
    fn start(&self, _files: usize, _bytes: u64) {}
    /// Bytes received (increments).
    fn advance(&self, _bytes: u64) {}
    /// A file is verified and in the cache.
    fn done(&self, _what: &str) {}
    /// All downloads ended.
    fn finish(&self) {}
}

/// A reporter that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl Reporter for Silent {}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct FetchItem {
    /// `name:arch`, for messages.
    pub label: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

/// Hex SHA-256 and length of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(io("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, len))
}

/// Whether the cached copy of `item` exists and matches its hash and size (a mismatching copy is removed).
fn cached_ok(path: &Path, item: &FetchItem) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let (hash, len) = hash_file(path)?;
    if hash == item.sha256 && len == item.size {
        return Ok(true);
    }
    tracing::warn!(path = %path.display(), "cached .deb does not match its hash; fetching it again");
    std::fs::remove_file(path).map_err(io("remove corrupted cache entry", path))?;
    Ok(false)
}

/// Fetches one file into the cache, or finds it there verified, and returns its path; tells `reporter` it is done.
/// Safe to call from several threads for different files. The caller holds the cache lock.
pub fn fetch(http: &Http, cache: &Cache, item: &FetchItem, reporter: &dyn Reporter) -> Result<PathBuf> {
    let path = fetch_one(http, cache, item, reporter)?;
    reporter.done(&item.label);
    Ok(path)
}

fn fetch_one(http: &Http, cache: &Cache, item: &FetchItem, reporter: &dyn Reporter) -> Result<PathBuf> {
    let path = cache.deb_path(&item.sha256);
    if cached_ok(&path, item)? {
        return Ok(path);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create cache directory", dir))?;
    let part = path.with_extension("deb.part");
    http.download_resume(&item.url, &part, item.size, &mut |n| reporter.advance(n))?;
    let (hash, len) = hash_file(&part)?;
    if hash != item.sha256 || len != item.size {
        std::fs::remove_file(&part).map_err(io("remove bad download", &part))?;
        return Err(Error::Mismatch {
            what: ".deb",
            url: item.url.clone(),
            reason: format!(
                "got {len} bytes with SHA256 {hash}, the index lists {} bytes with SHA256 {}",
                item.size, item.sha256
            ),
        });
    }
    std::fs::rename(&part, &path).map_err(io("move download into the cache", &path))?;
    Ok(path)
}

/// Tells `reporter` how many of `items` must be downloaded (are not in the cache yet) and how many bytes that is.
pub fn announce<'a>(cache: &Cache, items: impl IntoIterator<Item = &'a FetchItem>, reporter: &dyn Reporter) {
    let missing: Vec<&FetchItem> =
        items.into_iter().filter(|i| !cache.deb_path(&i.sha256).exists()).collect();
    let resumed: u64 = missing
        .iter()
        .map(|i| {
            std::fs::metadata(cache.deb_path(&i.sha256).with_extension("deb.part"))
                .map_or(0, |m| m.len().min(i.size))
        })
        .sum();
    reporter.start(missing.len(), missing.iter().map(|i| i.size).sum::<u64>().saturating_sub(resumed));
}

/// Runs `work` for each index in `order` on up to `jobs` threads, taking indexes in that order, and returns the
/// results by index. After the first failure no new index is started (their results are `None`); the error is
/// in the results.
pub fn run_parallel<T: Send>(
    count: usize,
    order: &[usize],
    jobs: usize,
    work: impl Fn(usize) -> Result<T> + Sync,
) -> Vec<Option<Result<T>>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, 16).min(order.len().max(1)) {
            s.spawn(|| {
                while !failed.load(Ordering::SeqCst) {
                    let Some(&i) = order.get(next.fetch_add(1, Ordering::SeqCst)) else { break };
                    let r = work(i);
                    if r.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// The first error among `results` (by index), or the values, all of them present.
pub fn collect_results<T>(results: Vec<Option<Result<T>>>, what: &str) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(results.len());
    let mut missing = false;
    for r in results {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => return Err(e),
            None => missing = true,
        }
    }
    if missing {
        return Err(Error::Http { url: String::new(), reason: format!("{what} not attempted") });
    }
    Ok(out)
}

/// Fetches all `items` with up to `jobs` parallel downloads, largest first. Returns the verified cache paths in the
/// order of `items`; on failure, the first error (files already verified stay cached, partial ones stay for a
/// resume). The caller holds the cache lock.
pub fn fetch_all(
    http: &Http,
    cache: &Cache,
    items: &[FetchItem],
    jobs: usize,
    reporter: &dyn Reporter,
) -> Result<Vec<PathBuf>> {
    announce(cache, items, reporter);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].size));
    let results = run_parallel(items.len(), &order, jobs, |i| fetch(http, cache, &items[i], reporter));
    reporter.finish();
    collect_results(results, "download")
}
