//! The lock file `fhskit.lock`: the exact packages a resolution chose (name, version, architecture, where to get
//! them, size and SHA-256, and the dependency edges), so the same request gives the same closure later and
//! `fetch` needs no index to reproduce it.

use std::path::Path;

use crate::cache::write_atomic;
use crate::error::{Error, Result, io};

/// Current lock file format.
pub const LOCK_VERSION: u32 = 1;

/// One locked package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Repository base URL and suite it was taken from.
    pub repository: String,
    pub suite: String,
    /// Path below the repository URL (`pool/…`).
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// `name:arch` keys of the locked packages this one depends on.
    #[serde(default)]
    pub depends: Vec<String>,
    /// The repository component it came from (`main`, `non-free`, …); empty in locks written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
}

impl LockedPackage {
    pub fn key(&self) -> String {
        format!("{}:{}", self.name, self.architecture)
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.repository.trim_end_matches('/'), self.filename.trim_start_matches('/'))
    }
}

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// The request as given (`name[:arch][=version]`), sorted.
    pub request: Vec<String>,
    #[serde(default, rename = "package")]
    pub packages: Vec<LockedPackage>,
}

impl Lock {
    pub fn read(path: &Path) -> Result<Lock> {
        let text = std::fs::read_to_string(path).map_err(io("read lock file", path))?;
        let lock: Lock = toml::from_str(&text)
            .map_err(|e| Error::Lock { path: path.to_owned(), reason: e.message().to_owned() })?;
        let bad = |reason: String| Error::Lock { path: path.to_owned(), reason };
        if lock.version != LOCK_VERSION {
            return Err(bad(format!("format version {} (this fhskit reads {LOCK_VERSION})", lock.version)));
        }
        let keys: std::collections::HashSet<String> = lock.packages.iter().map(LockedPackage::key).collect();
        for p in &lock.packages {
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("{}: malformed sha256", p.key())));
            }
            if p.filename.split('/').any(|c| c == "..") {
                return Err(bad(format!("{}: filename escapes the repository", p.key())));
            }
            if let Some(d) = p.depends.iter().find(|d| !keys.contains(*d)) {
                return Err(bad(format!("{} depends on {d}, which is not locked", p.key())));
            }
        }
        Ok(lock)
    }

    /// Writes the lock atomically, with a header comment.
    pub fn write(&self, path: &Path) -> Result<()> {
        let body = toml::to_string(self)
            .map_err(|e| Error::Lock { path: path.to_owned(), reason: e.to_string() })?;
        let text = format!(
            "# fhskit.lock: written by `fhskit pkgs resolve`; `fhskit pkgs fetch` reproduces it exactly.\n{body}"
        );
        write_atomic(path, text.as_bytes())
    }

    /// The locked package with this `name:arch` key.
    pub fn get(&self, key: &str) -> Option<&LockedPackage> {
        self.packages.iter().find(|p| p.key() == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fhskit.lock");
        let p = LockedPackage {
            name: "a".into(),
            version: "1:1.0-1".into(),
            architecture: "amd64".into(),
            repository: "http://127.0.0.1:1/debian".into(),
            suite: "testing".into(),
            filename: "pool/main/a/a.deb".into(),
            size: 10,
            sha256: "0".repeat(64),
            depends: vec![],
            component: String::new(),
        };
        let lock = Lock { version: LOCK_VERSION, request: vec!["a".into()], packages: vec![p.clone()] };
        lock.write(&path).unwrap();
        assert_eq!(Lock::read(&path).unwrap(), lock);
        assert_eq!(p.url(), "http://127.0.0.1:1/debian/pool/main/a/a.deb");
        let mut bad = lock.clone();
        bad.packages[0].depends.push("b:amd64".into());
        bad.write(&path).unwrap();
        assert!(Lock::read(&path).unwrap_err().to_string().contains("not locked"));
        std::fs::write(&path, "version = 1\nrequest = []\nbogus = 2\n").unwrap();
        assert!(Lock::read(&path).is_err());
    }
}
