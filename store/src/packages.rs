//! The package map: which store path a package from a repository became, so that it is not downloaded and
//! unpacked again, and so that binary caches can say the same to other machines. A package is named by a key
//! that its caller derives from everything the store path depends on (the verified `.deb`'s SHA-256, the store
//! name, the store paths of its dependencies); the store only keeps `key → path`, one small file per key in
//! `<state>/packages/`. The map is a cache: an entry whose path is no longer valid (collected) is ignored, and a
//! lost entry only costs a download.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::error::{Result, StoreError, io_err};
use crate::local::Store;
use crate::store_path::StorePath;

/// True if and only if `key` has the form of a package key (64 lowercase hexadecimal digits).
pub fn is_package_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Store {
    fn packages_dir(&self) -> PathBuf {
        self.state_dir().join("packages")
    }

    /// Records that the package `key` is `path` (valid in this store).
    pub fn record_package(&self, key: &str, path: &StorePath) -> Result<()> {
        if !is_package_key(key) {
            return Err(StoreError::Invalid(format!("cannot record package '{key}': not a package key")));
        }
        let dir = self.packages_dir();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let file = dir.join(key);
        // Temporary name and rename, without fsync: after a crash the entry is missing or whole, never torn.
        let tmp = dir.join(format!(".{key}.{}", std::process::id()));
        let written = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(path.to_string().as_bytes()))
            .and_then(|()| fs::rename(&tmp, &file));
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err("write", &file)(e)
        })
    }

    /// The valid store path recorded for the package `key`, if any.
    pub fn package(&self, key: &str) -> Result<Option<StorePath>> {
        if !is_package_key(key) {
            return Ok(None);
        }
        let file = self.packages_dir().join(key);
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &file)(e)),
        };
        let Ok(path) = self.store_dir().parse_path(text.trim()) else { return Ok(None) };
        Ok(self.is_valid(&path)?.then_some(path))
    }

    /// Every recorded package whose path is valid, as (key, path).
    pub fn packages(&self) -> Result<Vec<(String, StorePath)>> {
        let dir = self.packages_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list directory", &dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(io_err("list directory", &dir))?;
            let key = e.file_name().to_string_lossy().into_owned();
            if let Some(path) = self.package(&key)? {
                out.push((key, path));
            }
        }
        out.sort();
        Ok(out)
    }
}
