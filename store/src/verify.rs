//! Verification and optimisation of the local store. `verify` recomputes NAR hashes (in parallel) and checks
//! that references are valid; `repair_from_nar` swaps in a good copy atomically (`RENAME_EXCHANGE`) after checking
//! it against the registered hash. `optimise` hard-links identical files through `<store>/.links/<nix32 NAR hash>`,
//! as Nix's auto-optimise does.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Result, StoreError, io_err};
use crate::fsutil;
use crate::hash::{Hash, HashAlgo};
use crate::local::Store;
use crate::nar::{self, HashingReader, RestoreOptions};
use crate::store_path::StorePath;

/// Something wrong with a valid path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Registered but absent from the store directory.
    Missing(StorePath),
    /// Its contents no longer hash to the registered NAR hash.
    HashMismatch { path: StorePath, expected: Hash, got: Hash },
    /// It could not be read (the message says why).
    Unreadable { path: StorePath, reason: String },
    /// A reference that is not valid.
    MissingReference { path: StorePath, reference: StorePath },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing(p) => write!(f, "path '{p}' is registered but missing"),
            Problem::HashMismatch { path, expected, got } => {
                write!(f, "path '{path}' was modified! expected hash '{expected}', got '{got}'")
            }
            Problem::Unreadable { path, reason } => write!(f, "path '{path}' cannot be read: {reason}"),
            Problem::MissingReference { path, reference } => {
                write!(f, "path '{path}' refers to '{reference}', which is not valid")
            }
        }
    }
}

/// The outcome of [`Store::verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub checked: usize,
    pub problems: Vec<Problem>,
    /// Temporary copies of adds, imports and collections that were killed, removed by this verification (only
    /// when the whole store is verified).
    pub removed_temporaries: Vec<PathBuf>,
    /// Entries of the store directory named like store paths that are not registered (left by an add killed between
    /// moving and registering, or a collection between unregistering and deleting): not trusted, replaced by the
    /// next add of the same path, removed by the next collection. Only when the whole store is verified.
    pub unregistered: Vec<PathBuf>,
}

/// The outcome of [`Store::optimise`].
#[derive(Debug, Clone, Default)]
pub struct OptimiseReport {
    pub files_linked: u64,
    pub bytes_saved: u64,
}

impl Store {
    /// Recomputes the NAR hash of `paths` (every valid path when `None`) and checks their references. Verifying the
    /// whole store also removes the temporary copies of killed processes and lists unregistered store entries.
    pub fn verify(&self, paths: Option<&[StorePath]>) -> Result<VerifyReport> {
        let whole = paths.is_none();
        let paths: Vec<StorePath> = match paths {
            Some(p) => p.to_vec(),
            None => self.db().graph()?.paths,
        };
        let (removed_temporaries, unregistered) = if whole {
            (self.remove_stale_temporaries()?, self.unregistered_entries()?)
        } else {
            Default::default()
        };
        let mut infos = Vec::with_capacity(paths.len());
        for p in &paths {
            infos.push(self.path_info(p)?.ok_or_else(|| StoreError::NotValid(p.to_string()))?);
        }
        let mut problems: Vec<Problem> = infos
            .par_iter()
            .filter_map(|info| {
                let phys = self.physical_path(&info.path);
                if fs::symlink_metadata(&phys).is_err() {
                    return Some(Problem::Missing(info.path.clone()));
                }
                match nar::hash_path(&phys, info.nar_hash.algo()) {
                    Ok((got, _)) if got == info.nar_hash => None,
                    Ok((got, _)) => Some(Problem::HashMismatch {
                        path: info.path.clone(),
                        expected: info.nar_hash.clone(),
                        got,
                    }),
                    Err(e) => Some(Problem::Unreadable { path: info.path.clone(), reason: e.to_string() }),
                }
            })
            .collect();
        for info in &infos {
            for r in &info.references {
                if !self.is_valid(r)? {
                    problems
                        .push(Problem::MissingReference { path: info.path.clone(), reference: r.clone() });
                }
            }
        }
        Ok(VerifyReport { checked: infos.len(), problems, removed_temporaries, unregistered })
    }

    /// Replaces the contents of valid `path` with the NAR from `input`, which must hash to the registered hash.
    pub fn repair_from_nar(&self, path: &StorePath, input: &mut impl Read) -> Result<()> {
        let info = self.path_info(path)?.ok_or_else(|| StoreError::NotValid(path.to_string()))?;
        let _lock = self.lock_writers()?;
        let tmp = self.physical_store_dir().join(fsutil::unique_name(".tmp"));
        fs::create_dir(&tmp).map_err(io_err("create directory", &tmp))?;
        let result = (|| {
            let staged = tmp.join("x");
            // The NAR must hash to what is registered, so its symlinks are those the path had.
            let options = RestoreOptions { read_only: false, confine_symlinks: None };
            let mut r = HashingReader::new(input, HashAlgo::Sha256);
            nar::restore(&mut r, &staged, &options)?;
            let (got, _) = r.finish();
            if got != info.nar_hash {
                return Err(StoreError::HashMismatch {
                    what: format!("the repair NAR of {path}"),
                    expected: info.nar_hash.to_string(),
                    got: got.to_string(),
                });
            }
            fsutil::canonicalise(&staged)?;
            let dest = self.physical_path(path);
            if fs::symlink_metadata(&dest).is_ok() {
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &staged,
                    nix::fcntl::AT_FDCWD,
                    &dest,
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .map_err(|e| io_err("swap in the repaired copy of", &dest)(e.into()))?;
            } else {
                fsutil::rename(&staged, &dest).map_err(io_err("move into the store", &dest))?;
            }
            Ok(())
        })();
        let _ = fsutil::remove_tree(&tmp);
        result
    }

    /// Hard-links identical files of valid paths together; returns what it saved.
    pub fn optimise(&self) -> Result<OptimiseReport> {
        let _lock = self.lock_writers()?;
        let links = self.physical_store_dir().join(".links");
        fs::create_dir_all(&links).map_err(io_err("create directory", &links))?;
        let graph = self.db().graph()?;
        let mut files = Vec::new();
        for p in &graph.paths {
            collect_files(&self.physical_path(p), &mut files);
        }
        let hashed: Vec<(PathBuf, String)> = files
            .par_iter()
            .filter_map(|f| nar::hash_path(f, HashAlgo::Sha256).ok().map(|(h, _)| (f.clone(), h.to_nix32())))
            .collect();
        let mut report = OptimiseReport::default();
        let mut inode_of_link: HashMap<String, u64> = HashMap::new();
        for (file, hash) in hashed {
            let link = links.join(&hash);
            let meta = fs::symlink_metadata(&file).map_err(io_err("read metadata of", &file))?;
            let link_ino = match inode_of_link.get(&hash) {
                Some(i) => *i,
                None => match fs::symlink_metadata(&link) {
                    Ok(m) => m.ino(),
                    Err(_) => {
                        fs::hard_link(&file, &link).map_err(io_err("link into .links", &file))?;
                        meta.ino()
                    }
                },
            };
            inode_of_link.insert(hash, link_ino);
            if link_ino == meta.ino() {
                continue;
            }
            replace_with_link(&link, &file)?;
            report.files_linked += 1;
            if meta.nlink() == 1 {
                report.bytes_saved += meta.len();
            }
        }
        Ok(report)
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if meta.is_dir() {
        if let Ok(rd) = fs::read_dir(path) {
            for e in rd.flatten() {
                collect_files(&e.path(), out);
            }
        }
    } else if meta.is_file() && meta.len() > 0 {
        out.push(path.to_path_buf());
    }
}

/// Atomically replaces `file` by a hard link to `link`, keeping its read-only directory canonical.
fn replace_with_link(link: &Path, file: &Path) -> Result<()> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    let dir_mode = fs::symlink_metadata(dir).map_err(io_err("read metadata of", dir))?.mode() & 0o7777;
    fs::set_permissions(dir, fs::Permissions::from_mode(dir_mode | 0o200))
        .map_err(io_err("make writable", dir))?;
    let tmp = dir.join(fsutil::unique_name(".tmp-link"));
    let result = fs::hard_link(link, &tmp).and_then(|()| fs::rename(&tmp, file)).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("replace with a hard link", file)(e)
    });
    fs::set_permissions(dir, fs::Permissions::from_mode(dir_mode)).map_err(io_err("set the mode of", dir))?;
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        dir,
        &nix::sys::time::TimeSpec::UTIME_OMIT,
        &nix::sys::time::TimeSpec::new(1, 0),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io_err("set the modification time of", dir)(e.into()))?;
    result
}
