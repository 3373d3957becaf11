//! Filesystem helpers of the local store: atomic writes, copying a tree into the store, canonicalising store
//! objects (read-only modes, mtime 1, no setuid/setgid), and removing read-only trees.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::error::{Result, StoreError, io_err};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call, for temporary entries beside their target.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Writes `data` to `path` safely (the workspace's one way: `safefs`), flushed to disk before the rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    safefs::write_file(path, data, &safefs::WriteOptions::default()).map_err(io_err("write", path))
}

/// Renames `from` to `to`. A read-only directory moving to another parent needs write permission on itself (for
/// its `..` entry, rename(2)), which a canonical store object lacks unless the caller is root: it is made
/// writable for the move and given its mode back after.
pub fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let meta = fs::symlink_metadata(from)?;
            if !meta.is_dir() || meta.mode() & 0o200 != 0 {
                return Err(e);
            }
            let mode = meta.mode() & 0o7777;
            fs::set_permissions(from, fs::Permissions::from_mode(mode | 0o200))?;
            match fs::rename(from, to) {
                Ok(()) => fs::set_permissions(to, fs::Permissions::from_mode(mode)),
                Err(e) => {
                    let _ = fs::set_permissions(from, fs::Permissions::from_mode(mode));
                    Err(e)
                }
            }
        }
        r => r,
    }
}

/// Copies `src` (file, symlink or directory, not following symlinks) to `dst`, which must not exist, giving the
/// copy the canonical attributes of a store object as it goes (see [`canonicalise`]): one pass over the tree
/// instead of a copy and a second walk. Files are written through their descriptor (mode at creation, mtime and
/// owner set on the open file); a directory gets its mode and mtime after its entries are in.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let as_root = nix::unistd::geteuid().is_root();
    copy_canonical(src, dst, as_root)
}

fn copy_canonical(src: &Path, dst: &Path, as_root: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = fs::symlink_metadata(src).map_err(io_err("read metadata of", src))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io_err("read symlink", src))?;
        std::os::unix::fs::symlink(&target, dst).map_err(io_err("create symlink", dst))?;
        return set_owner_and_mtime(dst, as_root);
    } else if ft.is_file() {
        let mode = if meta.mode() & 0o100 != 0 { 0o555 } else { 0o444 };
        let mut input = fs::File::open(src).map_err(io_err("open", src))?;
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(dst)
            .map_err(io_err("create", dst))?;
        std::io::copy(&mut input, &mut out).map_err(io_err("copy", src))?;
        // The umask may have taken bits away; the mode is exact either way.
        out.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err("set the mode of", dst))?;
        if as_root {
            std::os::unix::fs::fchown(&out, Some(0), Some(0)).map_err(io_err("change the owner of", dst))?;
        }
        nix::sys::stat::futimens(&out, &TimeSpec::UTIME_OMIT, &TimeSpec::new(1, 0))
            .map_err(|e| io_err("set the modification time of", dst)(e.into()))?;
        return Ok(());
    } else if ft.is_dir() {
        fs::create_dir(dst).map_err(io_err("create directory", dst))?;
        let entries: Vec<_> = fs::read_dir(src)
            .map_err(io_err("list directory", src))?
            .collect::<std::io::Result<_>>()
            .map_err(io_err("list directory", src))?;
        use rayon::prelude::*;
        entries.par_iter().try_for_each(|e| copy_canonical(&e.path(), &dst.join(e.file_name()), as_root))?;
        fs::set_permissions(dst, fs::Permissions::from_mode(0o555))
            .map_err(io_err("set the mode of", dst))?;
        return set_owner_and_mtime(dst, as_root);
    }
    Err(StoreError::Invalid(format!(
        "cannot add {}: only regular files, directories and symlinks can be stored",
        src.display()
    )))
}

/// Owner root (when running as root) and mtime 1, without following a symlink.
fn set_owner_and_mtime(path: &Path, as_root: bool) -> Result<()> {
    if as_root {
        std::os::unix::fs::lchown(path, Some(0), Some(0)).map_err(io_err("change the owner of", path))?;
    }
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &TimeSpec::UTIME_OMIT,
        &TimeSpec::new(1, 0),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io_err("set the modification time of", path)(e.into()))
}

/// Makes a freshly written tree look like every store object: files 0444 or 0555 (by the owner's execute bit),
/// directories 0555, mtime 1, owner root when running as root. Anything but regular files, directories and
/// symlinks (sockets, FIFOs, devices) is refused, as Nix refuses it in build outputs.
pub fn canonicalise(path: &Path) -> Result<()> {
    canonicalise_as(path, nix::unistd::geteuid().is_root())
}

/// [`canonicalise`] with the effective user's rootness asked once for the whole tree, not once per file.
fn canonicalise_as(path: &Path, root: bool) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(io_err("read metadata of", path))?;
    let ft = meta.file_type();
    if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
        return Err(StoreError::Invalid(format!("file '{}' has an unsupported type", path.display())));
    }
    if ft.is_dir() {
        let entries: Vec<PathBuf> = fs::read_dir(path)
            .map_err(io_err("list directory", path))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(io_err("list directory", path))?;
        use rayon::prelude::*;
        entries.par_iter().try_for_each(|p| canonicalise_as(p, root))?;
    }
    if root && (meta.uid() != 0 || meta.gid() != 0) {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err("change the owner of", path)(e.into()))?;
    }
    if !ft.is_symlink() {
        let mode = if ft.is_dir() || meta.mode() & 0o100 != 0 { 0o555 } else { 0o444 };
        if meta.mode() & 0o7777 != mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(io_err("set the mode of", path))?;
        }
    }
    if meta.mtime() != 1 {
        utimensat(
            nix::fcntl::AT_FDCWD,
            path,
            &TimeSpec::UTIME_OMIT,
            &TimeSpec::new(1, 0),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| io_err("set the modification time of", path)(e.into()))?;
    }
    Ok(())
}

/// Removes a tree whose directories may be read-only; returns the apparent size of what it removed.
pub fn remove_tree(path: &Path) -> Result<u64> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("read metadata of", path)(e)),
    };
    if meta.is_dir() {
        if meta.mode() & 0o700 != 0o700 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                .map_err(io_err("make writable", path))?;
        }
        let mut bytes = 0;
        for e in fs::read_dir(path).map_err(io_err("list directory", path))? {
            let e = e.map_err(io_err("list directory", path))?;
            bytes += remove_tree(&e.path())?;
        }
        fs::remove_dir(path).map_err(io_err("remove directory", path))?;
        Ok(bytes)
    } else {
        fs::remove_file(path).map_err(io_err("remove", path))?;
        Ok(meta.len())
    }
}
