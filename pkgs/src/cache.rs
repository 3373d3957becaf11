//! The on-disk cache under `$XDG_CACHE_HOME/fhskit`: verified indexes per suite (`indexes/<suite key>/`), the
//! `.deb` content cache keyed by SHA-256 (`debs/<sha256>.deb`, partial downloads as `.part`), scratch space for
//! unpacking, and the lock that makes a second concurrent process wait.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::config::Repository;
use crate::error::{Result, io};

/// The cache directory layout.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// Held while a process changes the cache; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of a suite's verified indexes.
    pub fn suite_dir(&self, repo: &Repository) -> PathBuf {
        self.root.join("indexes").join(repo.cache_key())
    }

    /// Where a verified `.deb` with this SHA-256 lives.
    pub fn deb_path(&self, sha256: &str) -> PathBuf {
        self.root.join("debs").join(format!("{sha256}.deb"))
    }

    /// Scratch directory for unpacking (same file system as the cache, so renames are atomic).
    pub fn scratch_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).map_err(io("create cache directory", &dir))?;
        Ok(dir)
    }

    /// Takes the cache lock, calling `on_wait` once if another process holds it, then blocking until it is free.
    pub fn lock(&self, on_wait: impl FnOnce()) -> Result<CacheLock> {
        std::fs::create_dir_all(&self.root).map_err(io("create cache directory", &self.root))?;
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("open cache lock", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(io("lock", &path))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
        }
        Ok(CacheLock { _file: file })
    }
}

/// Writes `data` to `path` safely (the workspace's one way: `safefs`), creating its directory: readers never see
/// half a file, and the file is flushed before the rename (a lock file must survive a power loss).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    safefs::write_file(path, data, &safefs::WriteOptions::default().create_parent())
        .map_err(io("write", path))
}
