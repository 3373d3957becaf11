//! Locks and temporary roots: writers hold a shared lock on `gc.lock` while they add paths and the collector an
//! exclusive one, so a collection never sees a half-added path; each open store records the paths it added or
//! used in `temproots/<pid>-<n>` (NUL-terminated, as Nix writes them) so they stay alive until it closes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Result, io_err};

/// A held lock on `gc.lock`; released on drop.
#[derive(Debug)]
pub(crate) struct LockGuard(#[allow(dead_code)] Flock<File>);

pub(crate) fn lock(path: &Path, exclusive: bool) -> Result<LockGuard> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open lock", path))?;
    let arg = if exclusive { FlockArg::LockExclusive } else { FlockArg::LockShared };
    loop {
        match Flock::lock(file.try_clone().map_err(io_err("open lock", path))?, arg) {
            Ok(f) => return Ok(LockGuard(f)),
            Err((_, nix::errno::Errno::EINTR)) => continue,
            Err((_, e)) => return Err(io_err("lock", path)(e.into())),
        }
    }
}

/// This store handle's temporary-roots file.
#[derive(Debug)]
pub(crate) struct TempRoots {
    file: File,
    path: PathBuf,
}

impl TempRoots {
    pub(crate) fn create(dir: &Path) -> Result<TempRoots> {
        let path = dir.join(crate::fsutil::unique_name("").trim_start_matches('-'));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err("create temporary roots", &path))?;
        Ok(TempRoots { file, path })
    }

    pub(crate) fn add(&mut self, logical: &str) -> Result<()> {
        let mut line = Vec::with_capacity(logical.len() + 1);
        line.extend_from_slice(logical.as_bytes());
        line.push(0);
        self.file.write_all(&line).map_err(io_err("write temporary roots", &self.path))
    }
}

impl Drop for TempRoots {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Returns true if and only if a process with this pid exists.
pub(crate) fn pid_alive(pid: i32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The pid a temp-root file or a temporary store entry belongs to (`<pid>-…` or `.tmp-<pid>-…`).
pub(crate) fn owner_pid(name: &str) -> Option<i32> {
    let name = name.trim_start_matches('.');
    let name = name.strip_prefix("tmp-").or_else(|| name.strip_prefix("trash-")).unwrap_or(name);
    name.split('-').next()?.parse().ok()
}

/// Reads every live process's temporary roots, removing the files of dead processes.
pub(crate) fn read_temp_roots(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match owner_pid(&name) {
            Some(pid) if pid_alive(pid) => {
                let data = fs::read(e.path()).map_err(io_err("read temporary roots", e.path()))?;
                out.extend(
                    data.split(|&b| b == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned()),
                );
            }
            _ => {
                tracing::debug!(path = ?e.path(), "removing stale temporary roots");
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(out)
}
