//! Safe output: the rewritten file is built beside its destination and renamed over it, so a failure at any
//! point leaves the destination as it was.
//!
//! Unchanged bytes are copied file to file (the kernel's `copy_file_range` where available, so a 200 MB file is
//! never read into memory), then the [`Rewrite`]'s patches and inserted bytes are written at their offsets. A
//! destination that is not a regular file (a device such as `/dev/null`, a FIFO) is never replaced: the result is
//! streamed into it in order, as patchelf's in-place write does. A symlink is followed to the file it names.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::Rewrite;

/// Writes `input` with `rewrite` applied to `dest` (which may be `input` itself).
pub fn write(input: &mut File, input_len: u64, dest: &Path, rewrite: &Rewrite) -> Result<()> {
    let dest = follow_symlinks(dest)?;
    // patchelf writes into the file itself, so a file the caller may not write is an error there; keep that rule
    // although the rename would succeed (opening for writing does not truncate or change anything).
    match fs::OpenOptions::new().write(true).open(&dest) {
        Ok(target) => {
            let meta = target.metadata().map_err(|e| Error::io("getting info about", &dest, e))?;
            if !meta.file_type().is_file() {
                return stream(input, input_len, target, &dest, rewrite);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("opening", &dest, e)),
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The result takes the destination's mode and owner, as patchelf's in-place write keeps them; a new `--output`
    // file gets 0777 less the umask, as patchelf's `open(O_CREAT, 0777)` gives it.
    let existing = fs::metadata(&dest).ok();
    // No fsync, as patchelf: the rename alone keeps readers from a half-written file.
    let options = safefs::WriteOptions::default().create_mode(0o777).durability(safefs::Durability::None);
    let mut tmp = safefs::AtomicFile::create(&dest, &options)
        .map_err(|e| Error::io("creating a temporary file in", &dir, e))?;
    let writing = |e| Error::io("writing", &dest, e);
    // The input with the new bytes in between, then the patches at their output offsets.
    input.seek(SeekFrom::Start(0)).map_err(writing)?;
    let mut copied = 0;
    for (at, bytes) in &rewrite.inserts {
        let at = (*at).clamp(copied, input_len);
        copied +=
            std::io::copy(&mut Read::by_ref(input).take(at - copied), tmp.file_mut()).map_err(writing)?;
        tmp.file_mut().write_all(bytes).map_err(writing)?;
    }
    copied += std::io::copy(input, tmp.file_mut()).map_err(writing)?;
    if copied != input_len {
        return Err(changed(&dest));
    }
    let file = tmp.file();
    for (off, bytes) in &rewrite.patches {
        file.write_all_at(bytes, *off).map_err(writing)?;
    }
    if let Some(meta) = &existing {
        file.set_permissions(meta.permissions()).map_err(writing)?;
        // Keeping the owner only works for root or the owner itself; anything else keeps the caller as owner.
        let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
    }
    tmp.commit().map_err(|e| Error::io("renaming the new file to", &dest, e))?;
    Ok(())
}

/// The path a chain of symlinks ends at (the path itself when it is none). The end need not exist: patchelf's
/// `open(O_CREAT)` through a dangling link creates the file it names, and so does the rename here.
fn follow_symlinks(path: &Path) -> Result<PathBuf> {
    let mut path = path.to_path_buf();
    // The kernel's own limit on links followed in one lookup.
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path).map_err(|e| Error::io("resolving", &path, e))?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(Error::io("resolving", path, std::io::Error::from_raw_os_error(40))) // ELOOP
}

/// Writes the result into a target that is not a regular file, front to back in blocks, each with the patches
/// that fall into it.
fn stream(input: &mut File, input_len: u64, mut target: File, dest: &Path, rewrite: &Rewrite) -> Result<()> {
    const BLOCK: u64 = 1 << 20;
    let writing = |e| Error::io("writing", dest, e);
    input.seek(SeekFrom::Start(0)).map_err(writing)?;
    let mut out_pos = 0u64;
    let mut emit = |buf: &mut [u8], target: &mut File| -> Result<()> {
        let (start, end) = (out_pos, out_pos + buf.len() as u64);
        // In the order given: a later patch of the same bytes wins, as in the file-to-file path.
        for (off, bytes) in &rewrite.patches {
            let (p_start, p_end) = (*off, off + bytes.len() as u64);
            let (from, to) = (p_start.max(start), p_end.min(end));
            if from < to {
                buf[(from - start) as usize..(to - start) as usize]
                    .copy_from_slice(&bytes[(from - p_start) as usize..(to - p_start) as usize]);
            }
        }
        target.write_all(buf).map_err(writing)?;
        out_pos = end;
        Ok(())
    };
    let mut buf = Vec::with_capacity(BLOCK as usize);
    let mut pos = 0u64;
    let mut inserts = rewrite.inserts.iter().peekable();
    loop {
        if let Some((at, bytes)) = inserts.peek()
            && (*at).min(input_len) <= pos
        {
            emit(&mut bytes.clone(), &mut target)?;
            inserts.next();
            continue;
        }
        if pos >= input_len {
            break;
        }
        // Blocks end at the next insertion point, so inserted bytes go between two of them.
        let next = inserts.peek().map_or(input_len, |(at, _)| (*at).min(input_len));
        let end = next.min(pos + BLOCK);
        buf.clear();
        let n = Read::by_ref(input).take(end - pos).read_to_end(&mut buf).map_err(writing)?;
        if n as u64 != end - pos {
            return Err(changed(dest));
        }
        emit(&mut buf, &mut target)?;
        pos = end;
    }
    target.flush().map_err(writing)
}

fn changed(dest: &Path) -> Error {
    Error::io(
        "reading",
        dest,
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file changed while being patched"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// A FIFO read back by a thread: what a device target receives, byte for byte.
    #[test]
    fn a_fifo_target_receives_the_same_bytes_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let input_path = dir.path().join("in");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&input_path, &data).unwrap();
        let rewrite = Rewrite {
            inserts: vec![(100, vec![9; 5000]), (2_000_000, b"inserted".to_vec())],
            patches: vec![
                (10, b"abc".to_vec()),
                (1_048_570, vec![7; 20]),
                (11, b"Z".to_vec()),
                (2_004_990, vec![1; 30]),
            ],
        };
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        let mut input = File::open(&input_path).unwrap();
        write(&mut input, data.len() as u64, &fifo, &rewrite).unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got, rewrite.apply(&data));
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    }

    #[test]
    fn symlinks_are_followed_even_when_dangling() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("sub/target", dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("link", dir.path().join("link2")).unwrap();
        assert_eq!(follow_symlinks(&dir.path().join("link2")).unwrap(), dir.path().join("sub/target"));
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
        assert!(follow_symlinks(&dir.path().join("loop")).is_err());
    }
}
