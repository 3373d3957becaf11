//! fhskit's package set in the CLI: `<nixpkgs>` (the embedded Nix files of `pkgs/nixpkgs/`, added to the store once
//! per version, last in the search path so that `-I nixpkgs=…` and NIX_PATH win), the Debian package records the
//! evaluator asks for (`pkgs::nixpkgs::Source` on the lock file this run uses) and `builtin:fhskit-deb`, the builder
//! of one Debian package's store path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use store::Store;

/// The lock file evaluations pin Debian packages in: `$FHSKIT_LOCK`, else `./fhskit.lock` when it exists, else the
/// user's `$XDG_STATE_HOME/fhskit/fhskit.lock`.
pub fn lock_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FHSKIT_LOCK").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let here = PathBuf::from("fhskit.lock");
    if here.exists() {
        return std::path::absolute(&here).unwrap_or(here);
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("fhskit/fhskit.lock")
}

/// The package records of this run, on the configured repositories (read on first use).
pub fn source() -> pkgs::Result<pkgs::nixpkgs::Source> {
    let settings = pkgs::config::Settings::load(&pkgs::config::LoadOptions::default())?;
    Ok(pkgs::nixpkgs::Source::new(settings, lock_path()))
}

/// A short digest of the embedded files, naming their version.
fn files_key() -> String {
    let mut text = Vec::new();
    for (path, data) in pkgs::nixpkgs::FILES {
        text.extend_from_slice(path.as_bytes());
        text.push(0);
        text.extend_from_slice(&(data.len() as u64).to_le_bytes());
        text.extend_from_slice(data);
    }
    store::hash::hex(&store::hash::sha256(&text))[..32].to_owned()
}

fn write_files(dir: &Path) -> Result<()> {
    for (path, data) in pkgs::nixpkgs::FILES {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&file, data).with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

/// Where `<nixpkgs>` is: the embedded files written once per version into a directory of the cache. Not a store
/// path: evaluation that never reads `<nixpkgs>` (and every read-only `eval`) must leave the store untouched, and the
/// files a derivation uses are copied into the store when it names them, as with any checkout of nixpkgs.
pub fn embedded() -> Result<String> {
    let dir = pkgs::config::default_cache_dir().join("nixpkgs").join(format!("{}-nixpkgs", files_key()));
    if !dir.join("default.nix").exists() {
        let parent = dir.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        let tmp = tempfile::Builder::new().prefix(".nixpkgs-").tempdir_in(parent)?;
        write_files(tmp.path())?;
        let tmp = tmp.keep();
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another process wrote it first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    Ok(dir.display().to_string())
}

/// `builtin:fhskit-deb` for the builder: its attributes `debs` (the fetched `.deb` files), `deps` (the store paths
/// of the dependencies), `libc` (the C library's store path, or empty), `loader` and `triplet`.
pub struct DebBuiltin {
    pub store_dir: String,
    pub physical_store_dir: PathBuf,
    /// fhskit's package cache (its verified `.deb` files).
    pub cache_dir: PathBuf,
}

impl DebBuiltin {
    pub fn new(store: &Store) -> DebBuiltin {
        DebBuiltin {
            store_dir: store.store_dir().to_string(),
            physical_store_dir: store.physical_store_dir().to_path_buf(),
            cache_dir: pkgs::config::default_cache_dir(),
        }
    }

    fn dir(&self, logical: &str) -> Result<pkgs::nixpkgs::StoreDir, String> {
        let base = logical
            .strip_prefix(self.store_dir.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| format!("'{logical}' is not a store path of {}", self.store_dir))?;
        Ok(pkgs::nixpkgs::StoreDir {
            logical: logical.to_owned(),
            physical: self.physical_store_dir.join(base),
        })
    }

    fn run(
        &self,
        drv: &store::Derivation,
        outputs: &BTreeMap<String, PathBuf>,
        log: &mut dyn FnMut(&str),
    ) -> Result<(), String> {
        let env = |name: &str| drv.env.get(name).map(String::as_str).unwrap_or("");
        let out = outputs.get("out").ok_or("'builtin:fhskit-deb' requires an 'out' output")?;
        let out_logical = drv
            .outputs
            .get("out")
            .and_then(|o| o.path.as_ref())
            .map(|p| p.to_string())
            .ok_or("'builtin:fhskit-deb' requires an 'out' output")?;
        let debs = env("debs")
            .split_whitespace()
            .map(|d| self.dir(d).map(|d| d.physical))
            .collect::<Result<Vec<_>, _>>()?;
        let deps = env("deps").split_whitespace().map(|d| self.dir(d)).collect::<Result<Vec<_>, _>>()?;
        let libc = match env("libc") {
            "" => None,
            l => Some(self.dir(l)?),
        };
        let build = pkgs::nixpkgs::DebBuild {
            debs,
            out: out_logical,
            deps,
            libc,
            loader: env("loader").to_owned(),
            triplet: env("triplet").to_owned(),
        };
        pkgs::nixpkgs::build_deb_output(&build, out, log).map_err(|e| e.to_string())
    }
}

impl build::ExtraBuiltins for DebBuiltin {
    fn build(
        &self,
        name: &str,
        drv: &store::Derivation,
        outputs: &BTreeMap<String, PathBuf>,
        log: &mut dyn FnMut(&str),
    ) -> Option<Result<(), String>> {
        (name == "fhskit-deb").then(|| self.run(drv, outputs, log))
    }

    /// The `.deb` files `fhskit pkgs` already downloaded and verified, by SHA-256.
    fn known_file(&self, algo: &str, hex: &str) -> Option<PathBuf> {
        (algo == "sha256").then(|| pkgs::cache::Cache::new(&self.cache_dir).deb_path(hex))
    }
}
