//! A binary cache in a local directory (`file:///srv/cache`): files are written to a temporary name beside the
//! target and renamed into place, so readers never see half a file.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Backend, Reader, check_key};
use crate::error::{CacheError, Result, io_err};

#[derive(Debug)]
pub struct FileBackend {
    root: PathBuf,
}

impl FileBackend {
    /// Opens (creating when `create`) the directory `root` with `nar/` and `log/` inside.
    pub fn open(root: &Path, create: bool) -> Result<FileBackend> {
        if create {
            for d in [root.to_path_buf(), root.join("nar"), root.join("log")] {
                fs::create_dir_all(&d).map_err(io_err("create directory", d.display()))?;
            }
        }
        Ok(FileBackend { root: root.to_path_buf() })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)
            .map_err(|reason| CacheError::BadUrl { url: self.root.display().to_string(), reason })?;
        Ok(self.root.join(key))
    }

    fn ensure_parent(&self, target: &Path) -> Result<()> {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent.display()))?;
        }
        Ok(())
    }
}

impl Backend for FileBackend {
    fn get(&self, key: &str) -> Result<Option<Reader>> {
        let path = self.path(key)?;
        match fs::File::open(&path) {
            Ok(f) => Ok(Some(Box::new(std::io::BufReader::with_capacity(256 * 1024, f)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("open", path.display())(e)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("read metadata of", path.display())(e)),
        }
    }

    fn put_bytes(&self, key: &str, data: &[u8], _mime: &str) -> Result<()> {
        let target = self.path(key)?;
        self.ensure_parent(&target)?;
        // Flushed before the rename, so a narinfo never names a NAR that a power loss emptied.
        safefs::write_file(&target, data, &safefs::WriteOptions::default())
            .map_err(io_err("write", target.display()))
    }

    fn put_file(&self, key: &str, src: &Path, _mime: &str) -> Result<()> {
        let target = self.path(key)?;
        self.ensure_parent(&target)?;
        match fs::rename(src, &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let tmp = safefs::temp_path_beside(&target);
                let result = fs::copy(src, &tmp).map_err(io_err("copy into", tmp.display())).and_then(|_| {
                    fs::rename(&tmp, &target).map_err(io_err("rename into place", target.display()))
                });
                if result.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                result
            }
            Err(e) => Err(io_err("move into place", target.display())(e)),
        }
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.clone()
    }
}
