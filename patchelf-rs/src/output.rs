//! Safe output: the rewritten file is built beside its destination and renamed over it, so a failure at any
//! point leaves the destination as it was.
//!
//! Unchanged bytes are copied file to file (the kernel's `copy_file_range` where available, so a 200 MB file is
//! never read into memory), then the [`Rewrite`]'s patches and inserted bytes are written at their offsets.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::Rewrite;

/// Writes `input` with `rewrite` applied to `dest` (which may be `input` itself).
pub fn write(input: &mut File, input_len: u64, dest: &Path, rewrite: &Rewrite) -> Result<()> {
    // Through a symlink, patchelf rewrites the file it points to; so do we.
    let dest: PathBuf = match fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(dest).map_err(|e| Error::io("resolving", dest, e))?
        }
        _ => dest.to_path_buf(),
    };
    // patchelf writes into the file itself, so a file the caller may not write is an error there; keep that rule
    // although the rename would succeed (opening for writing does not truncate or change anything).
    if let Err(e) = fs::OpenOptions::new().write(true).open(&dest)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(Error::io("opening", &dest, e));
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The result takes the destination's mode and owner, as patchelf's in-place write keeps them; a new `--output`
    // file gets 0777 less the umask, as patchelf's `open(O_CREAT, 0777)` gives it.
    let existing = fs::metadata(&dest).ok();
    let mut tmp = tempfile::Builder::new()
        .prefix(".patchelf-rs-")
        .permissions(fs::Permissions::from_mode(0o777))
        .tempfile_in(&dir)
        .map_err(|e| Error::io("creating a temporary file in", &dir, e))?;
    let writing = |e| Error::io("writing", &dest, e);
    // The image up to the insertion point, the inserted bytes, then the rest (a trailing payload) behind them.
    let at = rewrite.insert_at.min(input_len);
    input.seek(SeekFrom::Start(0)).map_err(writing)?;
    let mut copied = std::io::copy(&mut Read::by_ref(input).take(at), tmp.as_file_mut()).map_err(writing)?;
    if at < input_len {
        let out = tmp.as_file_mut();
        out.seek(SeekFrom::Start(at + rewrite.insert.len() as u64)).map_err(writing)?;
        input.seek(SeekFrom::Start(at)).map_err(writing)?;
        copied += std::io::copy(input, out).map_err(writing)?;
    }
    if copied != input_len {
        return Err(Error::io(
            "reading",
            &dest,
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file changed while being patched"),
        ));
    }
    let file = tmp.as_file();
    for (off, bytes) in &rewrite.patches {
        file.write_all_at(bytes, *off).map_err(writing)?;
    }
    if !rewrite.insert.is_empty() {
        file.write_all_at(&rewrite.insert, at).map_err(writing)?;
    }
    if let Some(meta) = &existing {
        file.set_permissions(meta.permissions()).map_err(writing)?;
        // Keeping the owner only works for root or the owner itself; anything else keeps the caller as owner.
        let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
    }
    tmp.persist(&dest).map_err(|e| Error::io("renaming the new file to", &dest, e.error))?;
    Ok(())
}
