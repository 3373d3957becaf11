//! Output locks, as Nix's `pathlocks`: one lock file per output, taken in sorted order without waiting (a build
//! that finds one busy releases what it holds and tries again later), so two processes never build the same output
//! at once. A holder that is done deletes its lock files: unlink, then a byte written into the still-open file, so a
//! process that locked the old inode meanwhile sees a non-empty file and starts over with a fresh one.
//!
//! The lock files live in `<state>/build-locks/`, not beside the outputs: the collector removes every unregistered
//! entry of the store directory, and removing a held lock file would let a second builder in.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Result, io_err};

/// Locks held on a set of paths; released (and, after [`PathLocks::delete_on_drop`], deleted) when dropped.
#[derive(Debug)]
pub struct PathLocks {
    held: Vec<(PathBuf, Flock<File>)>,
    delete: bool,
}

impl PathLocks {
    /// Takes the locks of `files` (in sorted order) without waiting. `None` when one is held by someone else;
    /// everything taken so far is released then.
    pub fn try_lock(files: &[PathBuf]) -> Result<Option<PathLocks>> {
        let mut sorted: Vec<&PathBuf> = files.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut locks = PathLocks { held: Vec::new(), delete: false };
        for path in sorted {
            match lock_one(path)? {
                Some(f) => locks.held.push((path.clone(), f)),
                None => return Ok(None),
            }
        }
        Ok(Some(locks))
    }

    /// Deletes the lock files when released (after a successful build, or when someone else built the outputs).
    pub fn delete_on_drop(&mut self) {
        self.delete = true;
    }
}

fn lock_one(path: &Path) -> Result<Option<Flock<File>>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    }
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err("open lock", path))?;
        let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::Error::EWOULDBLOCK)) => return Ok(None),
            Err((_, nix::Error::EINTR)) => continue,
            Err((_, e)) => return Err(io_err("lock", path)(e.into())),
        };
        // A non-empty lock file was deleted by its previous holder after we opened it: start over.
        match locked.metadata() {
            Ok(m) if m.size() == 0 => return Ok(Some(locked)),
            Ok(_) => continue,
            Err(e) => return Err(io_err("read metadata of", path)(e)),
        }
    }
}

impl Drop for PathLocks {
    fn drop(&mut self) {
        for (path, mut file) in self.held.drain(..) {
            if self.delete {
                let _ = std::fs::remove_file(&path);
                let _ = file.write_all(b"d");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.lock");
        let b = dir.path().join("b.lock");
        let mut first = PathLocks::try_lock(&[b.clone(), a.clone()]).unwrap().expect("free");
        assert!(PathLocks::try_lock(std::slice::from_ref(&a)).unwrap().is_none());
        first.delete_on_drop();
        drop(first);
        assert!(!a.exists() && !b.exists());
        let again = PathLocks::try_lock(std::slice::from_ref(&a)).unwrap();
        assert!(again.is_some());
    }
}
