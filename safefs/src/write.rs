//! Writing a file safely: the new contents go to a temporary file in the target's directory (same file system,
//! so the rename is atomic), are flushed to disk as the caller's [`Durability`] asks, and are renamed over the
//! target. Readers see the old file or the new one, never a mix; a failed or abandoned write removes its
//! temporary file. A target that is a symlink is replaced by the new file (the link is not followed); a target
//! that is a directory is refused; any other non-regular target (a FIFO, `/dev/null`, a terminal) is refused or
//! written through, as the caller says ([`NonRegular`]). Errors keep their kind and the system's message; the
//! caller names the action and the target in its own error, as every error of the workspace does.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How hard a write tries to survive a crash of the machine. A crash of the writing process never shows half a
/// file whatever is chosen: the rename is atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No fsync: for caches and files that are regenerated when lost (a power loss may leave an empty file).
    None,
    /// The file is flushed before the rename: after a power loss the target holds the old contents or the new.
    File,
    /// The file, and the directory after the rename: the rename itself survives a power loss (files other programs
    /// depend on, such as a system loader or configuration).
    FileAndDirectory,
}

/// What to do when the target exists and is neither a regular file nor a symlink (nor a directory, which is
/// always refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonRegular {
    /// Refuse with an error naming the target: renaming over a device or FIFO would replace it.
    Refuse,
    /// Open the target and write into it (no atomicity is possible there): `-o /dev/stdout`, a named pipe.
    WriteThrough,
}

/// How [`write_file`] and [`AtomicFile`] write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// The new file's permission bits, exactly (not reduced by the umask); `None` gives `create_mode` less the
    /// umask.
    pub mode: Option<u32>,
    /// The mode asked of `open(O_CREAT)` when `mode` is `None` (the umask applies): `0o666` by default, `0o777`
    /// for a program as a compiler or patchelf writes one.
    pub create_mode: u32,
    pub durability: Durability,
    /// Create the target's directory (and its parents) when missing.
    pub create_parent: bool,
    pub non_regular: NonRegular,
}

impl Default for WriteOptions {
    /// Flushed before the rename, mode from the umask, parent must exist, non-regular targets refused.
    fn default() -> Self {
        WriteOptions {
            mode: None,
            create_mode: 0o666,
            durability: Durability::File,
            create_parent: false,
            non_regular: NonRegular::Refuse,
        }
    }
}

impl WriteOptions {
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    pub fn create_mode(mut self, create_mode: u32) -> Self {
        self.create_mode = create_mode;
        self
    }

    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    pub fn create_parent(mut self) -> Self {
        self.create_parent = true;
        self
    }

    pub fn non_regular(mut self, non_regular: NonRegular) -> Self {
        self.non_regular = non_regular;
        self
    }
}

/// Writes `data` to `path` safely (see the module's documentation).
pub fn write_file(path: &Path, data: &[u8], options: &WriteOptions) -> io::Result<()> {
    let mut file = AtomicFile::create(path, options)?;
    file.write_all(data)?;
    file.commit()
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh name beside `target` for a temporary file or directory: `.<name>.tmp-<pid>-<n>`, hidden, unique in
/// this process, and telling by its pid which process left it behind.
pub fn temp_path_beside(target: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    target.with_file_name(name)
}

/// A file being written to replace `target`: write through [`Write`] (or the [`File`]), then [`AtomicFile::commit`].
/// Dropped without a commit, the temporary file is removed and the target is left as it was.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    /// The temporary file; `None` when writing straight into a non-regular target.
    temp: Option<PathBuf>,
    file: File,
    durability: Durability,
}

impl AtomicFile {
    /// Starts a write of `target`; errors name the target (or the temporary file beside it).
    pub fn create(target: &Path, options: &WriteOptions) -> io::Result<AtomicFile> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if options.create_parent {
            fs::create_dir_all(dir)?;
        }
        match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            Ok(m) if !m.is_file() && !m.file_type().is_symlink() => {
                if options.non_regular == NonRegular::Refuse {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "it is not a regular file"));
                }
                let file = OpenOptions::new().write(true).truncate(true).open(target)?;
                return Ok(AtomicFile {
                    target: target.to_owned(),
                    temp: None,
                    file,
                    durability: Durability::None,
                });
            }
            _ => {}
        }
        // A leftover of the same name (a pid reused after a crash) is never opened: create_new, then retry.
        loop {
            let temp = temp_path_beside(target);
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(options.mode.unwrap_or(options.create_mode))
                .open(&temp);
            match opened {
                Ok(file) => {
                    let atomic = AtomicFile {
                        target: target.to_owned(),
                        temp: Some(temp),
                        file,
                        durability: options.durability,
                    };
                    if let Some(mode) = options.mode {
                        // The creation mode was reduced by the umask; the caller asked for exactly this one.
                        atomic.file.set_permissions(fs::Permissions::from_mode(mode))?;
                    }
                    return Ok(atomic);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The file being written (for `set_permissions`, `fchown`, positioned writes).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// The temporary file's path (`None` when writing through into a non-regular target).
    pub fn temp_path(&self) -> Option<&Path> {
        self.temp.as_deref()
    }

    /// Flushes as asked and renames the file over the target.
    pub fn commit(mut self) -> io::Result<()> {
        let Some(temp) = self.temp.take() else {
            return self.file.flush();
        };
        let result = (|| {
            if self.durability != Durability::None {
                self.file.sync_all()?;
            }
            fs::rename(&temp, &self.target)?;
            if self.durability == Durability::FileAndDirectory
                && let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty())
            {
                File::open(dir).and_then(|d| d.sync_all())?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            let _ = fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn temps_in(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
            .collect()
    }

    #[test]
    fn replaces_atomically_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        fs::write(&target, "old").unwrap();
        let opts = WriteOptions::default().mode(0o640).durability(Durability::FileAndDirectory);
        let mut f = AtomicFile::create(&target, &opts).unwrap();
        f.write_all(b"new").unwrap();
        // Not yet committed: readers still see the old file.
        assert_eq!(fs::read(&target).unwrap(), b"old");
        f.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o7777, 0o640);
        assert!(temps_in(dir.path()).is_empty());
    }

    #[test]
    fn an_abandoned_write_leaves_the_target_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        fs::write(&target, "old").unwrap();
        let mut f = AtomicFile::create(&target, &WriteOptions::default()).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert!(temps_in(dir.path()).is_empty());
    }

    #[test]
    fn symlinks_are_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("real"), "real").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("real", &link).unwrap();
        write_file(&link, b"new", &WriteOptions::default()).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(fs::read(dir.path().join("real")).unwrap(), b"real");
    }

    #[test]
    fn non_regular_targets_are_refused_or_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_file(dir.path(), b"x", &WriteOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
        let null = Path::new("/dev/null");
        let err = write_file(null, b"x", &WriteOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(fs::metadata(null).unwrap().mode() & 0o170000 == 0o020000, "/dev/null is still a device");
        write_file(null, b"x", &WriteOptions::default().non_regular(NonRegular::WriteThrough)).unwrap();
        assert!(fs::metadata(null).unwrap().mode() & 0o170000 == 0o020000);
    }

    #[test]
    fn parents_are_created_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/f");
        let err = write_file(&target, b"x", &WriteOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        write_file(&target, b"x", &WriteOptions::default().create_parent().durability(Durability::None))
            .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"x");
    }
}
