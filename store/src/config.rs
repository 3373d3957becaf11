//! Where a local store lives: the logical store directory (part of every hash), the state directory (database,
//! GC roots, profiles, temporary roots, lock) and an optional physical root prefix (Nix's chroot stores), so that
//! `/nix/store` paths can be computed while the files live under another directory.
//!
//! Layout of an fhskit store in `BASE` (the default `BASE` is `$XDG_DATA_HOME/fhskit`, or `/var/lib/fhskit` for root):
//! `BASE/store/` (store objects), `BASE/var/db/db.sqlite`, `BASE/var/gcroots/{auto/}`, `BASE/var/profiles/`,
//! `BASE/var/temproots/`, `BASE/var/gc.lock`. A Nix-style chroot store in `ROOT` uses `ROOT/nix/store` and
//! `ROOT/nix/var/nix/…` with the logical store dir `/nix/store`.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, StoreError, io_err};
use crate::store_path::StoreDir;

/// The environment variable that selects the store base directory (or `local?root=DIR`).
pub const STORE_ENV: &str = "FHSKIT_STORE";

/// Where a store lives. Build with [`StoreConfig::in_dir`], [`StoreConfig::nix_chroot`] or [`StoreConfig::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The logical store directory, hashed into every path.
    pub store_dir: StoreDir,
    /// The logical state directory.
    pub state_dir: PathBuf,
    /// A physical prefix prepended to both directories (and to store paths) for file access.
    pub root: Option<PathBuf>,
}

fn absolute_normal(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(io_err("find the current directory for", path))?.join(path)
    };
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

impl StoreConfig {
    /// An fhskit store in `base`: `base/store` and `base/var`.
    pub fn in_dir(base: &Path) -> Result<StoreConfig> {
        let base = absolute_normal(base)?;
        let store = base.join("store");
        let store_dir = StoreDir::new(store.to_str().ok_or_else(|| {
            StoreError::Invalid(format!("store directory {} is not valid UTF-8", store.display()))
        })?)?;
        Ok(StoreConfig { store_dir, state_dir: base.join("var"), root: None })
    }

    /// A chroot store as Nix makes with `--store ROOT`: logical `/nix/store`, files under `ROOT/nix/store`.
    pub fn nix_chroot(root: &Path) -> Result<StoreConfig> {
        Ok(StoreConfig {
            store_dir: StoreDir::new("/nix/store")?,
            state_dir: PathBuf::from("/nix/var/nix"),
            root: Some(absolute_normal(root)?),
        })
    }

    /// Parses a `--store` value: `local?root=DIR` for a Nix-style chroot store, otherwise a base directory.
    pub fn parse(spec: &str) -> Result<StoreConfig> {
        match spec.strip_prefix("local?root=") {
            Some(root) => StoreConfig::nix_chroot(Path::new(root)),
            None => StoreConfig::in_dir(Path::new(spec)),
        }
    }

    /// The store a command's `--store SPEC` names (see [`StoreConfig::parse`]), else [`StoreConfig::from_env`].
    pub fn from_arg(spec: Option<&str>) -> Result<StoreConfig> {
        match spec {
            Some(spec) => StoreConfig::parse(spec),
            None => StoreConfig::from_env(),
        }
    }

    /// `FHSKIT_STORE` if set, else the per-user default (`$XDG_DATA_HOME/fhskit`, `~/.local/share/fhskit`), or
    /// `/var/lib/fhskit` for root.
    pub fn from_env() -> Result<StoreConfig> {
        if let Some(spec) = std::env::var_os(STORE_ENV).filter(|s| !s.is_empty()) {
            return StoreConfig::parse(&spec.to_string_lossy());
        }
        StoreConfig::in_dir(&default_base()?)
    }

    /// Where a logical path is on disk.
    pub fn physical(&self, logical: &Path) -> PathBuf {
        match &self.root {
            Some(root) => root.join(logical.strip_prefix("/").unwrap_or(logical)),
            None => logical.to_path_buf(),
        }
    }

    pub fn physical_store_dir(&self) -> PathBuf {
        self.physical(self.store_dir.as_path())
    }

    pub fn physical_state_dir(&self) -> PathBuf {
        self.physical(&self.state_dir)
    }

    /// Where build logs go: Nix's `<state>/../log/nix` for a Nix-style state directory (`/nix/var/log/nix`, so
    /// Nix finds the logs of a chroot store), else `<state>/log`.
    pub fn physical_log_dir(&self) -> PathBuf {
        match self.state_dir.parent() {
            Some(var) if self.state_dir.file_name().is_some_and(|n| n == "nix") && var.ends_with("var") => {
                self.physical(&var.join("log/nix"))
            }
            _ => self.physical(&self.state_dir.join("log")),
        }
    }
}

fn default_base() -> Result<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/fhskit"));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(x).join("fhskit"));
    }
    match std::env::var_os("HOME").filter(|s| !s.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/fhskit")),
        None => Err(StoreError::Invalid(
            "cannot choose a store directory: neither XDG_DATA_HOME nor HOME is set (use --store DIR)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let c = StoreConfig::parse("/tmp/a/../b").unwrap();
        assert_eq!(c.store_dir.as_str(), "/tmp/b/store");
        assert_eq!(c.physical_state_dir(), Path::new("/tmp/b/var"));
        let n = StoreConfig::parse("local?root=/tmp/x").unwrap();
        assert_eq!(n.store_dir.as_str(), "/nix/store");
        assert_eq!(n.physical_store_dir(), Path::new("/tmp/x/nix/store"));
        assert_eq!(n.physical_state_dir(), Path::new("/tmp/x/nix/var/nix"));
        assert_eq!(n.physical_log_dir(), Path::new("/tmp/x/nix/var/log/nix"));
        assert_eq!(c.physical_log_dir(), Path::new("/tmp/b/var/log"));
    }
}
