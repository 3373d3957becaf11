//! Where a binary cache's files live: a [`Backend`] reads, tests and writes files by their key inside the cache
//! (`nix-cache-info`, `<hash>.narinfo`, `nar/…`). Three exist: a local directory ([`file`]), an HTTP(S) server
//! ([`http`], GET/HEAD/PUT as Nix's HTTP store) and an S3 bucket ([`s3`], SigV4-signed requests to any
//! S3-compatible server). Everything above this module is the same for all three.

pub mod file;
pub mod http;
pub mod s3;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::Result;

/// MIME types Nix sends with uploads.
pub const MIME_CACHE_INFO: &str = "text/x-nix-cache-info";
pub const MIME_NARINFO: &str = "text/x-nix-narinfo";
pub const MIME_NAR: &str = "application/x-nix-nar";
pub const MIME_LISTING: &str = "application/json";
pub const MIME_LOG: &str = "text/plain; charset=utf-8";

/// A streaming read of a cache file.
pub type Reader = Box<dyn Read + Send>;

/// The storage of one binary cache.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Reads the file `key`; `Ok(None)` when it does not exist (HTTP 404, 410 or 403, as in Nix).
    fn get(&self, key: &str) -> Result<Option<Reader>>;

    /// True if and only if the file `key` exists.
    fn exists(&self, key: &str) -> Result<bool>;

    /// Writes `data` as the file `key`, replacing it atomically where the storage allows.
    fn put_bytes(&self, key: &str, data: &[u8], mime: &str) -> Result<()>;

    /// Writes the contents of the local file `src` as `key`; `src` is a temporary file that may be moved.
    fn put_file(&self, key: &str, src: &Path, mime: &str) -> Result<()>;

    /// A directory for temporary files that [`Backend::put_file`] can move cheaply (the cache directory itself
    /// for a local cache).
    fn temp_dir(&self) -> PathBuf {
        std::env::temp_dir()
    }
}

/// A key must be relative, without `.`/`..` segments (as Nix's local cache demands).
pub(crate) fn check_key(key: &str) -> std::result::Result<(), String> {
    if key.is_empty() {
        return Err("a cache file name must not be empty".into());
    }
    if key.starts_with('/') {
        return Err(format!("cache file name '{key}' must not be absolute"));
    }
    if key.split('/').any(|s| s == "." || s == ".." || s.is_empty()) {
        return Err(format!("cache file name '{key}' must not contain '..', '.' or empty segments"));
    }
    Ok(())
}
