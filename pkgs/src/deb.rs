//! Unpacking `.deb` files without dpkg: the `ar` container, `control.tar[.xz|.gz|.zst]` (whose `control`,
//! `md5sums`, `shlibs`, `symbols` and `postinst` are kept under `DEBIAN/` in the result, as `dpkg-deb -R` does;
//! `postinst` tells which alternatives the package registers, see [`crate::alternatives`]) and
//! `data.tar[.xz|.gz|.zst|.lzma]`.
//!
//! Extraction never trusts the archive: absolute paths and `..` components are rejected, nothing is written
//! through a symlink (every parent must be a real directory inside the root), relative symlinks that climb out of
//! the root and hard links to anything but an earlier regular file are rejected, device nodes and FIFOs are
//! skipped, and set-id bits are dropped. Unpacking goes to a temporary directory beside the destination that is
//! renamed into place only when everything succeeded.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::compression::Compression;
use crate::error::{Error, Result, io};

/// Control files copied into `DEBIAN/` of the unpacked tree.
const KEPT_CONTROL: &[&str] =
    &["control", "md5sums", "shlibs", "symbols", "triggers", "conffiles", "postinst"];

/// What the control archive said.
#[derive(Debug, Clone, Default)]
pub struct ControlInfo {
    /// The `control` file text.
    pub control: String,
    pub md5sums: Option<String>,
    pub shlibs: Option<String>,
}

fn unsafe_deb(deb: &Path, reason: impl Into<String>) -> Error {
    Error::Unsafe { path: deb.to_owned(), reason: reason.into() }
}

fn unpack_err(deb: &Path, reason: impl Into<String>) -> Error {
    Error::Unpack { path: deb.to_owned(), reason: reason.into() }
}

/// Unpacks `deb` into `dest` (which must not exist yet) atomically.
pub fn unpack(deb: &Path, dest: &Path) -> Result<ControlInfo> {
    if dest.exists() {
        return Err(unpack_err(deb, format!("destination {} already exists", dest.display())));
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io("create directory", parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(parent)
        .map_err(io("create temporary directory in", parent))?;
    let info = unpack_into(deb, tmp.path())?;
    let tmp_path = tmp.keep();
    fs::rename(&tmp_path, dest).map_err(|e| {
        fs::remove_dir_all(&tmp_path).ok();
        io("move unpacked package to", dest)(e)
    })?;
    Ok(info)
}

/// Unpacks `deb` into the existing, empty directory `root`.
pub fn unpack_into(deb: &Path, root: &Path) -> Result<ControlInfo> {
    let file = fs::File::open(deb).map_err(io("open", deb))?;
    let mut archive = ar::Archive::new(std::io::BufReader::new(file));
    let mut seen_binary = false;
    let mut info: Option<ControlInfo> = None;
    let mut data_done = false;
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.map_err(|e| unpack_err(deb, format!("bad ar archive: {e}")))?;
        let name =
            String::from_utf8_lossy(entry.header().identifier()).trim_end().trim_end_matches('/').to_owned();
        if !seen_binary {
            if name != "debian-binary" {
                return Err(unpack_err(deb, format!("first member is '{name}', not debian-binary")));
            }
            let mut v = String::new();
            entry.by_ref().take(64).read_to_string(&mut v).map_err(|e| unpack_err(deb, e.to_string()))?;
            if !v.trim().starts_with("2.") {
                return Err(unpack_err(deb, format!("unsupported format version '{}'", v.trim())));
            }
            seen_binary = true;
            continue;
        }
        if let Some(suffix) = name.strip_prefix("control.tar") {
            let comp = compression_of(deb, suffix)?;
            let reader = comp.reader(&mut entry).map_err(|e| unpack_err(deb, e.to_string()))?;
            info = Some(read_control(deb, reader, root)?);
        } else if let Some(suffix) = name.strip_prefix("data.tar") {
            if info.is_none() {
                return Err(unpack_err(deb, "data.tar comes before control.tar"));
            }
            let comp = compression_of(deb, suffix)?;
            let reader = comp.reader(&mut entry).map_err(|e| unpack_err(deb, e.to_string()))?;
            if comp == Compression::None {
                extract_data(deb, reader, root)?;
            } else {
                // Decompression on its own thread, ahead of the writes, as `dpkg-deb -x` decompresses in one
                // process and writes in another (tar): the two halves overlap instead of taking turns.
                std::thread::scope(|s| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(PIPE_CHUNKS);
                    s.spawn(move || decompress_into(reader, &tx));
                    extract_data(deb, ChunkReader { rx, chunk: Vec::new(), pos: 0 }, root)
                })?;
            }
            data_done = true;
            // Members after data.tar are ignored, as dpkg does.
            break;
        } else if name.starts_with('_') {
            continue;
        } else {
            return Err(unpack_err(deb, format!("unexpected member '{name}'")));
        }
    }
    if !data_done {
        return Err(unpack_err(deb, "no data.tar member (truncated file?)"));
    }
    info.ok_or_else(|| unpack_err(deb, "no control.tar member"))
}

/// Decompressed chunks in flight between the decompressing thread and the writer (each [`PIPE_CHUNK`] bytes).
const PIPE_CHUNKS: usize = 8;
const PIPE_CHUNK: usize = 256 << 10;

/// Reads `reader` to its end in chunks sent to `tx`; a read error is sent as the last item. Stops early when the
/// receiving side is gone (the writer failed).
fn decompress_into(mut reader: impl Read, tx: &std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>) {
    loop {
        let mut buf = vec![0u8; PIPE_CHUNK];
        let item = loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    break Ok(buf);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        let failed = item.is_err();
        if tx.send(item).is_err() || failed {
            return;
        }
    }
}

/// The receiving end of [`decompress_into`] as a reader; the end of the channel is the end of the data.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn compression_of(deb: &Path, suffix: &str) -> Result<Compression> {
    match suffix {
        "" => Ok(Compression::None),
        ".xz" => Ok(Compression::Xz),
        ".gz" => Ok(Compression::Gzip),
        ".zst" => Ok(Compression::Zstd),
        ".lzma" => Ok(Compression::Lzma),
        other => Err(unpack_err(deb, format!("unsupported member compression '{other}'"))),
    }
}

fn read_control(deb: &Path, reader: impl Read, root: &Path) -> Result<ControlInfo> {
    let mut tar = tar::Archive::new(reader);
    let mut info = ControlInfo::default();
    let meta = root.join("DEBIAN");
    fs::create_dir(&meta).map_err(io("create directory", &meta))?;
    let entries = tar.entries().map_err(|e| unpack_err(deb, format!("bad control.tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| unpack_err(deb, format!("bad control.tar: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| unpack_err(deb, e.to_string()))?.into_owned();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        if path.components().filter(|c| matches!(c, Component::Normal(_))).count() != 1
            || !KEPT_CONTROL.contains(&name.as_str())
        {
            continue;
        }
        let mut text = String::new();
        entry
            .by_ref()
            .take(64 << 20)
            .read_to_string(&mut text)
            .map_err(|e| unpack_err(deb, format!("control file {name}: {e}")))?;
        fs::write(meta.join(&name), &text).map_err(io("write", meta.join(&name)))?;
        match name.as_str() {
            "control" => info.control = text,
            "md5sums" => info.md5sums = Some(text),
            "shlibs" => info.shlibs = Some(text),
            _ => {}
        }
    }
    if info.control.is_empty() {
        return Err(unpack_err(deb, "control.tar has no control file"));
    }
    Ok(info)
}

/// Normalises an archive path to its components, rejecting absolute paths and `..`.
fn safe_components(deb: &Path, raw: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in raw.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(s) => out.push(
                s.to_str()
                    .ok_or_else(|| unsafe_deb(deb, format!("non-UTF-8 path {}", raw.display())))?
                    .to_owned(),
            ),
            Component::ParentDir => {
                return Err(unsafe_deb(deb, format!("path '{}' escapes the package root", raw.display())));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_deb(deb, format!("absolute path '{}'", raw.display())));
            }
        }
    }
    Ok(out)
}

/// Makes sure every parent of `parts` inside `root` is a real directory (created when missing), never a symlink.
/// `known` holds directories (relative, `/`-joined) already checked or created: a directory is never replaced
/// later (see `extract_data`), so they need no second look.
fn ensure_parents(deb: &Path, root: &Path, parts: &[String], known: &mut HashSet<String>) -> Result<PathBuf> {
    let parents = &parts[..parts.len().saturating_sub(1)];
    if parents.is_empty() || known.contains(&parents.join("/")) {
        return Ok(root.join(parts.join("/")));
    }
    let mut dir = root.to_path_buf();
    let mut rel = String::new();
    for p in parents {
        dir.push(p);
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(p);
        if known.contains(&rel) {
            continue;
        }
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(unsafe_deb(
                    deb,
                    format!("'{}' is written through a non-directory", parts.join("/")),
                ));
            }
            Err(_) => fs::create_dir(&dir).map_err(io("create directory", &dir))?,
        }
        known.insert(rel.clone());
    }
    Ok(root.join(parts.join("/")))
}

/// Whether a relative symlink at `parts` pointing to `target` stays inside the root.
fn symlink_stays_inside(parts: &[String], target: &Path) -> bool {
    let mut depth = parts.len() as i64 - 1;
    for c in target.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => depth += 1,
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    true
}

fn extract_data(deb: &Path, reader: impl Read, root: &Path) -> Result<()> {
    let mut tar = tar::Archive::new(reader);
    let entries = tar.entries().map_err(|e| unpack_err(deb, format!("bad data.tar: {e}")))?;
    let mut known = HashSet::new();
    let mut buf = vec![0u8; 256 << 10];
    for entry in entries {
        let mut entry = entry.map_err(|e| unpack_err(deb, format!("bad data.tar: {e}")))?;
        let raw = entry.path().map_err(|e| unpack_err(deb, e.to_string()))?.into_owned();
        let parts = safe_components(deb, &raw)?;
        if parts.is_empty() {
            continue;
        }
        if parts[0] == "DEBIAN" {
            return Err(unsafe_deb(deb, "data.tar writes into DEBIAN/, where the control files go"));
        }
        let dest = ensure_parents(deb, root, &parts, &mut known)?;
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        if let Ok(m) = fs::symlink_metadata(&dest) {
            if kind.is_dir() && m.is_dir() {
                continue;
            }
            // A later entry replaces an earlier one (as tar does), but never follows what was there.
            if m.is_dir() {
                return Err(unsafe_deb(deb, format!("'{}' replaces a directory", parts.join("/"))));
            }
            fs::remove_file(&dest).map_err(io("replace", &dest))?;
        }
        if kind.is_dir() {
            fs::create_dir(&dest).map_err(io("create directory", &dest))?;
            known.insert(parts.join("/"));
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dest)
                .map_err(io("create", &dest))?;
            loop {
                let n = match entry.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(unpack_err(deb, format!("{}: {e}", parts.join("/")))),
                };
                out.write_all(&buf[..n]).map_err(io("write", &dest))?;
            }
            out.set_permissions(fs::Permissions::from_mode(mode)).map_err(io("set permissions of", &dest))?;
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| unpack_err(deb, e.to_string()))?
                .ok_or_else(|| unpack_err(deb, format!("symlink '{}' without a target", parts.join("/"))))?
                .into_owned();
            if !symlink_stays_inside(&parts, &target) {
                return Err(unsafe_deb(
                    deb,
                    format!(
                        "symlink '{}' -> '{}' points outside the package",
                        parts.join("/"),
                        target.display()
                    ),
                ));
            }
            std::os::unix::fs::symlink(&target, &dest).map_err(io("create symlink", &dest))?;
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| unpack_err(deb, e.to_string()))?
                .ok_or_else(|| unpack_err(deb, format!("hard link '{}' without a target", parts.join("/"))))?
                .into_owned();
            let tparts = safe_components(deb, &target)?;
            let tpath = root.join(tparts.join("/"));
            match fs::symlink_metadata(&tpath) {
                Ok(m) if m.is_file() && !tparts.is_empty() => {
                    fs::hard_link(&tpath, &dest).map_err(io("create hard link", &dest))?;
                }
                _ => {
                    return Err(unsafe_deb(
                        deb,
                        format!(
                            "hard link '{}' -> '{}' is not to an earlier file",
                            parts.join("/"),
                            target.display()
                        ),
                    ));
                }
            }
        } else {
            tracing::debug!(path = %parts.join("/"), "skipping special file");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data`, then fails.
    struct FailingAfter(std::io::Cursor<Vec<u8>>);
    impl Read for FailingAfter {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(out)? {
                0 => Err(std::io::Error::other("corrupt stream")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn the_decompression_thread_passes_data_and_errors_and_stops_when_the_writer_does() {
        let data: Vec<u8> = (0..3 * PIPE_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let got = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel(PIPE_CHUNKS);
            let input = std::io::Cursor::new(data.clone());
            s.spawn(move || decompress_into(input, &tx));
            let mut out = Vec::new();
            ChunkReader { rx, chunk: Vec::new(), pos: 0 }.read_to_end(&mut out).map(|_| out)
        });
        assert_eq!(got.unwrap(), data);
        // A failing decoder: the reader gets the error after the data before it.
        let err = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel(PIPE_CHUNKS);
            let input = FailingAfter(std::io::Cursor::new(vec![1u8; 1000]));
            s.spawn(move || decompress_into(input, &tx));
            let mut out = Vec::new();
            let r = ChunkReader { rx, chunk: Vec::new(), pos: 0 }.read_to_end(&mut out);
            (r, out.len())
        });
        assert_eq!(err.1, 1000);
        assert!(err.0.unwrap_err().to_string().contains("corrupt stream"));
        // A writer that stops early (a bad entry) drops its end: the thread ends instead of blocking on a full
        // channel, so the scope returns.
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            s.spawn(move || decompress_into(std::io::repeat(7).take(64 * PIPE_CHUNK as u64), &tx));
            let mut first = [0u8; 10];
            ChunkReader { rx, chunk: Vec::new(), pos: 0 }.read_exact(&mut first).unwrap();
            assert_eq!(first, [7; 10]);
        });
    }

    #[test]
    fn path_checks() {
        let d = Path::new("x.deb");
        assert_eq!(safe_components(d, Path::new("./usr/lib/a")).unwrap(), ["usr", "lib", "a"]);
        assert!(safe_components(d, Path::new("./usr/../../etc")).is_err());
        assert!(safe_components(d, Path::new("/etc/passwd")).is_err());
        let parts = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        assert!(symlink_stays_inside(&parts("usr/lib/libfoo.so"), Path::new("libfoo.so.1")));
        assert!(symlink_stays_inside(&parts("usr/lib/x"), Path::new("../../bin/y")));
        assert!(!symlink_stays_inside(&parts("usr/lib/x"), Path::new("../../../etc/passwd")));
        assert!(symlink_stays_inside(&parts("usr/bin/x"), Path::new("/etc/alternatives/x")));
    }
}
