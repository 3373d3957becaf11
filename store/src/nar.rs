//! The Nix ARchive (NAR): a deterministic serialisation of a file, symlink or directory tree that records only the
//! executable bit. [`dump`] writes one from the filesystem (entries sorted bytewise, symlinks not followed);
//! [`restore`] reads one strictly (sorted unique entries, zero padding, safe names, optional symlink confinement)
//! and recreates it. Both stream; the store hashes NARs through them. [`NarWriter`] is the pure part: the framing
//! alone, for callers that walk a tree of their own (the evaluator reads files through its IO trait).

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::hash::{Hash, HashAlgo, Hasher};

const MAGIC: &[u8] = b"nix-archive-1";
/// Longest entry name accepted when reading (the Linux limit).
const MAX_NAME: u64 = 255;
/// Longest symlink target accepted when reading (PATH_MAX).
const MAX_TARGET: u64 = 4095;
const COPY_BUFFER: usize = 256 * 1024;

/// Why a NAR could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot archive {path}: it is a {kind}, and a NAR holds only files, directories and symlinks")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("{path} changed while it was archived (size {expected} became {found})")]
    Changed { path: PathBuf, expected: u64, found: u64 },
    #[error("malformed NAR at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    #[error("NAR symlink {path} -> {target} points outside {root}")]
    EscapingSymlink { path: PathBuf, target: String, root: PathBuf },
    #[error("cannot read NAR stream")]
    Read(#[source] io::Error),
    #[error("cannot write NAR stream")]
    Write(#[source] io::Error),
}

type Result<T, E = NarError> = std::result::Result<T, E>;

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> NarError + 'a {
    move |source| NarError::Io { action, path: path.to_owned(), source }
}

/// Where [`dump_node`] writes: the NAR framing helpers on top of `put`, and file contents through `put_file`,
/// which a sink may override to read straight into its own buffer (the hashing path saves a copy that way).
trait Sink {
    fn put(&mut self, data: &[u8]) -> Result<()>;

    /// Copies exactly `size` bytes of `file` (at `path`) into the NAR.
    fn put_file(&mut self, path: &Path, file: &mut fs::File, size: u64, buf: &mut [u8]) -> Result<()> {
        let mut copied = 0u64;
        loop {
            let n = match file.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", path)(e)),
            };
            copied += n as u64;
            if copied > size {
                return Err(NarError::Changed { path: path.to_owned(), expected: size, found: copied });
            }
            self.put(&buf[..n])?;
        }
        if copied != size {
            return Err(NarError::Changed { path: path.to_owned(), expected: size, found: copied });
        }
        Ok(())
    }

    fn put_u64(&mut self, n: u64) -> Result<()> {
        self.put(&n.to_le_bytes())
    }

    fn put_padding(&mut self, len: u64) -> Result<()> {
        let pad = padding(len);
        if pad > 0 {
            self.put(&[0u8; 8][..pad])?;
        }
        Ok(())
    }

    fn put_str(&mut self, s: &[u8]) -> Result<()> {
        self.put_u64(s.len() as u64)?;
        self.put(s)?;
        self.put_padding(s.len() as u64)
    }
}

/// A `Write` adapter counting the bytes that pass through.
#[derive(Debug)]
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Sink for Counting<W> {
    fn put(&mut self, data: &[u8]) -> Result<()> {
        self.inner.write_all(data).map_err(NarError::Write)?;
        self.count += data.len() as u64;
        Ok(())
    }
}

/// A `Write` adapter counting the bytes that pass through, which hands file contents to [`io::copy`]: where the
/// writer is one the kernel can move file data to directly (a socket or a file, also behind a `BufWriter` or a
/// `&mut`), the standard library sends them with sendfile(2)/splice(2)/copy_file_range(2), no buffer in between.
struct Direct<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Sink for Direct<W> {
    fn put(&mut self, data: &[u8]) -> Result<()> {
        self.inner.write_all(data).map_err(NarError::Write)?;
        self.count += data.len() as u64;
        Ok(())
    }

    fn put_file(&mut self, path: &Path, file: &mut fs::File, size: u64, _buf: &mut [u8]) -> Result<()> {
        let copied = io::copy(&mut Read::by_ref(file).take(size), &mut self.inner).map_err(|e| {
            // A failed read and a failed write look alike here; the writer's side is the likelier (a client gone).
            NarError::Write(e)
        })?;
        self.count += copied;
        let mut more = [0u8; 1];
        let grew = loop {
            match file.read(&mut more) {
                Ok(n) => break n > 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", path)(e)),
            }
        };
        if copied != size || grew {
            let found = if grew { size + 1 } else { copied };
            return Err(NarError::Changed { path: path.to_owned(), expected: size, found });
        }
        Ok(())
    }
}

fn padding(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

/// Writes the NAR of `path` to `out` like [`dump`], without a copy buffer of its own: file contents go straight
/// from the file to `out` through the kernel where `out` is a socket or a file (see [`Direct`]), else through the
/// standard library's small stack buffer. For many concurrent writers (`fhskit serve`), where a large buffer each
/// would add up.
pub fn dump_direct(path: &Path, out: impl Write) -> Result<u64> {
    let mut w = Direct { inner: out, count: 0 };
    w.put_str(MAGIC)?;
    dump_node(path, &mut w, &mut [])?;
    w.inner.flush().map_err(NarError::Write)?;
    Ok(w.count)
}

/// Writes the NAR of `path` to `out` and returns its size in bytes.
pub fn dump(path: &Path, out: impl Write) -> Result<u64> {
    let mut w = Counting { inner: out, count: 0 };
    let mut buf = vec![0u8; COPY_BUFFER];
    w.put_str(MAGIC)?;
    dump_node(path, &mut w, &mut buf)?;
    w.inner.flush().map_err(NarError::Write)?;
    Ok(w.count)
}

/// Writes the NAR of a single regular file's contents (used for text and flat content).
pub fn dump_bytes(contents: &[u8], executable: bool, out: impl Write) -> Result<u64> {
    let mut w = NarWriter::new(out)?;
    w.regular(executable, contents)?;
    Ok(w.finish()?.0)
}

/// Writes a NAR node by node to any `Write`, for a tree the caller walks itself. Entries of a directory must come
/// in strictly increasing bytewise order with names that are not empty, `.`, `..` or hold `/` or NUL, as Nix
/// requires; anything else is refused as [`NarError::Malformed`] rather than written.
#[derive(Debug)]
pub struct NarWriter<W: Write> {
    out: Counting<W>,
    /// For each open directory, the last entry name written in it.
    open: Vec<Option<Vec<u8>>>,
}

impl<W: Write> NarWriter<W> {
    /// Starts a NAR (writes the magic); the next call writes the root node.
    pub fn new(out: W) -> Result<NarWriter<W>> {
        let mut out = Counting { inner: out, count: 0 };
        out.put_str(MAGIC)?;
        Ok(NarWriter { out, open: Vec::new() })
    }

    /// A regular file node.
    pub fn regular(&mut self, executable: bool, contents: &[u8]) -> Result<()> {
        let w = &mut self.out;
        w.put_str(b"(")?;
        w.put_str(b"type")?;
        w.put_str(b"regular")?;
        if executable {
            w.put_str(b"executable")?;
            w.put_str(b"")?;
        }
        w.put_str(b"contents")?;
        w.put_str(contents)?;
        w.put_str(b")")
    }

    /// A symlink node.
    pub fn symlink(&mut self, target: &[u8]) -> Result<()> {
        let w = &mut self.out;
        w.put_str(b"(")?;
        w.put_str(b"type")?;
        w.put_str(b"symlink")?;
        w.put_str(b"target")?;
        w.put_str(target)?;
        w.put_str(b")")
    }

    /// Opens a directory node; its entries follow, then [`NarWriter::end_directory`].
    pub fn begin_directory(&mut self) -> Result<()> {
        self.out.put_str(b"(")?;
        self.out.put_str(b"type")?;
        self.out.put_str(b"directory")?;
        self.open.push(None);
        Ok(())
    }

    /// Opens the entry `name` of the innermost open directory; write its node next, then
    /// [`NarWriter::end_entry`].
    pub fn begin_entry(&mut self, name: &[u8]) -> Result<()> {
        let offset = self.out.count;
        let malformed = |reason: String| NarError::Malformed { offset, reason };
        check_name(name).map_err(malformed)?;
        let last = self.open.last_mut().ok_or_else(|| malformed("an entry outside a directory".into()))?;
        if last.as_deref().is_some_and(|l| l >= name) {
            return Err(malformed(format!(
                "entry '{}' is not after the previous one in bytewise order",
                String::from_utf8_lossy(name)
            )));
        }
        *last = Some(name.to_vec());
        let w = &mut self.out;
        w.put_str(b"entry")?;
        w.put_str(b"(")?;
        w.put_str(b"name")?;
        w.put_str(name)?;
        w.put_str(b"node")
    }

    /// Closes the entry opened last.
    pub fn end_entry(&mut self) -> Result<()> {
        self.out.put_str(b")")
    }

    /// Closes the innermost open directory.
    pub fn end_directory(&mut self) -> Result<()> {
        self.open.pop();
        self.out.put_str(b")")
    }

    /// Flushes the output and returns the NAR's size in bytes and the writer.
    pub fn finish(mut self) -> Result<(u64, W)> {
        self.out.inner.flush().map_err(NarError::Write)?;
        Ok((self.out.count, self.out.inner))
    }
}

fn dump_node(path: &Path, w: &mut impl Sink, buf: &mut [u8]) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(io_err("read metadata of", path))?;
    let ft = meta.file_type();
    w.put_str(b"(")?;
    w.put_str(b"type")?;
    if ft.is_symlink() {
        let target = fs::read_link(path).map_err(io_err("read symlink", path))?;
        w.put_str(b"symlink")?;
        w.put_str(b"target")?;
        w.put_str(target.as_os_str().as_bytes())?;
    } else if ft.is_file() {
        w.put_str(b"regular")?;
        if meta.permissions().mode() & 0o100 != 0 {
            w.put_str(b"executable")?;
            w.put_str(b"")?;
        }
        w.put_str(b"contents")?;
        let size = meta.len();
        w.put_u64(size)?;
        let mut file = fs::File::open(path).map_err(io_err("open", path))?;
        w.put_file(path, &mut file, size, buf)?;
        w.put_padding(size)?;
    } else if ft.is_dir() {
        w.put_str(b"directory")?;
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in fs::read_dir(path).map_err(io_err("list directory", path))? {
            let entry = entry.map_err(io_err("list directory", path))?;
            names.push(entry.file_name().as_bytes().to_vec());
        }
        names.sort_unstable();
        for name in names {
            w.put_str(b"entry")?;
            w.put_str(b"(")?;
            w.put_str(b"name")?;
            w.put_str(&name)?;
            w.put_str(b"node")?;
            dump_node(&path.join(OsStr::from_bytes(&name)), w, buf)?;
            w.put_str(b")")?;
        }
    } else {
        return Err(NarError::Unsupported { path: path.to_owned(), kind: file_kind(&ft) });
    }
    w.put_str(b")")
}

fn file_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "named pipe"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// Hashes the NAR of `path`, returning the hash and the NAR size.
///
/// Reading the tree and hashing run on two threads, so hashing a large tree uses both cores; file contents are
/// read straight into the chunks the hashing thread consumes. The reader may run [`READ_AHEAD`] chunks ahead:
/// a tree mixes stretches of small files (where reading costs most: a few system calls per file) with large
/// files (where hashing does), and a deep queue lets the reader cross the first while the hasher works through
/// the second, instead of each waiting in turn.
pub fn hash_path(path: &Path, algo: HashAlgo) -> Result<(Hash, u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(READ_AHEAD);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let hasher = std::thread::spawn(move || {
        let mut h = Hasher::new(algo);
        for (chunk, len) in rx {
            h.update(&chunk[..len]);
            let _ = back_tx.send(chunk);
        }
        h.finish()
    });
    let mut sink = ChunkSink { tx, recycled: back_rx, buf: vec![0; CHUNK], len: 0, count: 0 };
    let result = (|| {
        let mut buf = vec![0u8; COPY_BUFFER];
        sink.put_str(MAGIC)?;
        dump_node(path, &mut sink, &mut buf)?;
        sink.send()
    })();
    let count = sink.count;
    drop(sink);
    let hash = hasher.join().map_err(|_| NarError::Write(io::Error::other("hashing thread panicked")))?;
    result?;
    Ok((hash, count))
}

const CHUNK: usize = 1 << 20;
/// Chunks queued between the reader and the hasher: 24 MiB, which keeps `store hash` well under 64 MB of memory.
const READ_AHEAD: usize = 24;

/// Collects NAR bytes into large chunks (`buf[..len]`) and hands them to the hashing thread, which sends the
/// buffers back for reuse; dropping it ends the stream.
struct ChunkSink {
    tx: std::sync::mpsc::SyncSender<(Vec<u8>, usize)>,
    recycled: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    len: usize,
    count: u64,
}

impl ChunkSink {
    /// Hands the current chunk (if any) to the hashing thread and starts a new one.
    fn send(&mut self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let fresh = self.recycled.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        let full = std::mem::replace(&mut self.buf, fresh);
        let len = std::mem::take(&mut self.len);
        self.tx.send((full, len)).map_err(|_| NarError::Write(io::Error::other("hashing thread stopped")))
    }
}

impl Sink for ChunkSink {
    fn put(&mut self, mut data: &[u8]) -> Result<()> {
        self.count += data.len() as u64;
        while !data.is_empty() {
            let n = data.len().min(CHUNK - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == CHUNK {
                self.send()?;
            }
        }
        Ok(())
    }

    fn put_file(&mut self, path: &Path, file: &mut fs::File, size: u64, _buf: &mut [u8]) -> Result<()> {
        let mut copied = 0u64;
        loop {
            if self.len == CHUNK {
                self.send()?;
            }
            // Ask for one byte more than remains, so a file that grew is noticed.
            let want = (CHUNK - self.len).min((size - copied) as usize + 1);
            let n = match file.read(&mut self.buf[self.len..self.len + want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", path)(e)),
            };
            if n == 0 {
                if copied == size {
                    return Ok(());
                }
                return Err(NarError::Changed { path: path.to_owned(), expected: size, found: copied });
            }
            copied += n as u64;
            if copied > size {
                return Err(NarError::Changed { path: path.to_owned(), expected: size, found: copied });
            }
            self.len += n;
            self.count += n as u64;
        }
    }
}

/// A `Read` adapter that hashes and counts what it passes on; wrap a NAR source in it to learn the NAR hash.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, algo: HashAlgo) -> Self {
        HashingReader { inner, hasher: Hasher::new(algo), count: 0 }
    }

    /// The hash and the number of bytes read so far.
    pub fn finish(self) -> (Hash, u64) {
        (self.hasher.finish(), self.count)
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// How [`restore`] treats what it creates.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Read-only modes (0444/0555 files, 0555 directories) as in the store; otherwise 0644/0755.
    pub read_only: bool,
    /// When set, reject symlinks whose target, resolved lexically from where the link would be at `logical`, leaves
    /// `root` (absolute targets must start with `root`). `logical` is where the restored top node will live.
    pub confine_symlinks: Option<SymlinkConfinement>,
}

/// The bounds for symlink targets of a restored tree.
#[derive(Debug, Clone)]
pub struct SymlinkConfinement {
    /// The logical path the top node of the NAR will have (e.g. `/nix/store/…-name`).
    pub logical: PathBuf,
    /// The directory no target may leave (the store dir, or the restore destination itself).
    pub root: PathBuf,
}

/// Reads one NAR from `input` (exactly its bytes, nothing after) and recreates it at `dest`, which must not exist.
/// Wrap `input` in a [`HashingReader`] to learn the NAR hash. On error, whatever was created stays for the caller to
/// remove (the store restores into a temporary directory).
pub fn restore(input: &mut impl Read, dest: &Path, options: &RestoreOptions) -> Result<()> {
    let mut p = Parser { input, offset: 0 };
    p.expect(MAGIC, "the NAR magic 'nix-archive-1'")?;
    let logical = options.confine_symlinks.as_ref().map(|c| c.logical.clone());
    p.node(dest, logical.as_deref(), options)
}

/// Reads one NAR and checks it completely without writing anything (e.g. to validate an import).
pub fn validate(input: &mut impl Read) -> Result<()> {
    let mut p = Parser { input, offset: 0 };
    p.expect(MAGIC, "the NAR magic 'nix-archive-1'")?;
    p.skip_node()
}

struct Parser<'a, R> {
    input: &'a mut R,
    offset: u64,
}

impl<R: Read> Parser<'_, R> {
    fn malformed(&self, reason: impl Into<String>) -> NarError {
        NarError::Malformed { offset: self.offset, reason: reason.into() }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.malformed("unexpected end of the stream")
            } else {
                NarError::Read(e)
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn padding(&mut self, len: u64) -> Result<()> {
        let pad = padding(len);
        let mut b = [0u8; 8];
        self.read_exact(&mut b[..pad])?;
        if b[..pad].iter().any(|&x| x != 0) {
            return Err(self.malformed("non-zero padding"));
        }
        Ok(())
    }

    /// Reads a string of at most `max` bytes.
    fn string(&mut self, max: u64) -> Result<Vec<u8>> {
        let len = self.u64()?;
        if len > max {
            return Err(self.malformed(format!("string of {len} bytes where at most {max} are allowed")));
        }
        let mut s = vec![0u8; len as usize];
        self.read_exact(&mut s)?;
        self.padding(len)?;
        Ok(s)
    }

    fn expect(&mut self, token: &[u8], what: &str) -> Result<()> {
        let at = self.offset;
        let s = self.string(64)?;
        if s != token {
            return Err(NarError::Malformed {
                offset: at,
                reason: format!("expected {what}, found '{}'", String::from_utf8_lossy(&s)),
            });
        }
        Ok(())
    }

    /// Streams a file's contents of `len` bytes into `out` (or discards them).
    fn contents(&mut self, out: Option<(&mut fs::File, &Path)>) -> Result<()> {
        let len = self.u64()?;
        let mut remaining = len;
        let mut buf = vec![0u8; COPY_BUFFER.min(len as usize).max(1)];
        let mut out = out;
        while remaining > 0 {
            let n = remaining.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..n])?;
            if let Some((file, path)) = out.as_mut() {
                file.write_all(&buf[..n]).map_err(io_err("write", path))?;
            }
            remaining -= n as u64;
        }
        self.padding(len)
    }

    fn node(&mut self, dest: &Path, logical: Option<&Path>, options: &RestoreOptions) -> Result<()> {
        self.expect(b"(", "'('")?;
        self.expect(b"type", "'type'")?;
        let at = self.offset;
        let kind = self.string(64)?;
        match kind.as_slice() {
            b"regular" => {
                let mut tag = self.string(64)?;
                let mut executable = false;
                if tag == b"executable" {
                    self.expect(b"", "an empty string after 'executable'")?;
                    executable = true;
                    tag = self.string(64)?;
                }
                if tag != b"contents" {
                    return Err(self.malformed(format!(
                        "expected 'contents', found '{}'",
                        String::from_utf8_lossy(&tag)
                    )));
                }
                let mode = match (executable, options.read_only) {
                    (true, true) => 0o555,
                    (false, true) => 0o444,
                    (true, false) => 0o755,
                    (false, false) => 0o644,
                };
                // Created writable, made read-only once complete.
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(dest)
                    .map_err(io_err("create", dest))?;
                self.contents(Some((&mut file, dest)))?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(io_err("set the mode of", dest))?;
            }
            b"symlink" => {
                self.expect(b"target", "'target'")?;
                let at = self.offset;
                let target = self.string(MAX_TARGET)?;
                if target.is_empty() || target.contains(&0) {
                    return Err(NarError::Malformed {
                        offset: at,
                        reason: "empty symlink target or NUL byte in it".into(),
                    });
                }
                let target_path = Path::new(OsStr::from_bytes(&target));
                if let (Some(c), Some(logical)) = (&options.confine_symlinks, logical)
                    && !stays_within(logical, target_path, &c.root)
                {
                    return Err(NarError::EscapingSymlink {
                        path: logical.to_owned(),
                        target: String::from_utf8_lossy(&target).into_owned(),
                        root: c.root.clone(),
                    });
                }
                std::os::unix::fs::symlink(target_path, dest).map_err(io_err("create symlink", dest))?;
            }
            b"directory" => {
                fs::create_dir(dest).map_err(io_err("create directory", dest))?;
                let mut previous: Option<Vec<u8>> = None;
                loop {
                    let at = self.offset;
                    let tag = self.string(64)?;
                    match tag.as_slice() {
                        b")" => break,
                        b"entry" => {}
                        other => {
                            return Err(NarError::Malformed {
                                offset: at,
                                reason: format!(
                                    "expected 'entry' or ')', found '{}'",
                                    String::from_utf8_lossy(other)
                                ),
                            });
                        }
                    }
                    self.expect(b"(", "'('")?;
                    self.expect(b"name", "'name'")?;
                    let at = self.offset;
                    let name = self.string(MAX_NAME)?;
                    check_name(&name).map_err(|reason| NarError::Malformed { offset: at, reason })?;
                    if let Some(prev) = &previous
                        && prev.as_slice() >= name.as_slice()
                    {
                        let reason = if *prev == name { "duplicate entry" } else { "entries not sorted" };
                        return Err(NarError::Malformed {
                            offset: at,
                            reason: format!("{reason}: '{}'", String::from_utf8_lossy(&name)),
                        });
                    }
                    self.expect(b"node", "'node'")?;
                    let os = OsStr::from_bytes(&name);
                    let child_logical = logical.map(|l| l.join(os));
                    self.node(&dest.join(os), child_logical.as_deref(), options)?;
                    self.expect(b")", "')'")?;
                    previous = Some(name);
                }
                if options.read_only {
                    fs::set_permissions(dest, fs::Permissions::from_mode(0o555))
                        .map_err(io_err("set the mode of", dest))?;
                }
                return Ok(());
            }
            other => {
                return Err(NarError::Malformed {
                    offset: at,
                    reason: format!("unknown node type '{}'", String::from_utf8_lossy(other)),
                });
            }
        }
        self.expect(b")", "')'")
    }

    fn skip_node(&mut self) -> Result<()> {
        // Validation shares the checks of restore but writes nowhere: parse into a throwaway structure.
        self.expect(b"(", "'('")?;
        self.expect(b"type", "'type'")?;
        let at = self.offset;
        let kind = self.string(64)?;
        match kind.as_slice() {
            b"regular" => {
                let mut tag = self.string(64)?;
                if tag == b"executable" {
                    self.expect(b"", "an empty string after 'executable'")?;
                    tag = self.string(64)?;
                }
                if tag != b"contents" {
                    return Err(self.malformed("expected 'contents'"));
                }
                self.contents(None)?;
            }
            b"symlink" => {
                self.expect(b"target", "'target'")?;
                let t = self.string(MAX_TARGET)?;
                if t.is_empty() || t.contains(&0) {
                    return Err(self.malformed("empty symlink target or NUL byte in it"));
                }
            }
            b"directory" => {
                let mut previous: Option<Vec<u8>> = None;
                loop {
                    let tag = self.string(64)?;
                    match tag.as_slice() {
                        b")" => return Ok(()),
                        b"entry" => {}
                        _ => return Err(self.malformed("expected 'entry' or ')'")),
                    }
                    self.expect(b"(", "'('")?;
                    self.expect(b"name", "'name'")?;
                    let name = self.string(MAX_NAME)?;
                    check_name(&name).map_err(|r| self.malformed(r))?;
                    if previous.as_ref().is_some_and(|p| p.as_slice() >= name.as_slice()) {
                        return Err(self.malformed("duplicate or unsorted entry"));
                    }
                    self.expect(b"node", "'node'")?;
                    self.skip_node()?;
                    self.expect(b")", "')'")?;
                    previous = Some(name);
                }
            }
            other => {
                return Err(NarError::Malformed {
                    offset: at,
                    reason: format!("unknown node type '{}'", String::from_utf8_lossy(other)),
                });
            }
        }
        self.expect(b")", "')'")
    }
}

fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(format!("invalid entry name '{}'", String::from_utf8_lossy(name)));
    }
    Ok(())
}

/// Returns true if and only if `target`, as the target of a symlink at `link`, lexically stays inside `root`.
fn stays_within(link: &Path, target: &Path, root: &Path) -> bool {
    let mut resolved = if target.is_absolute() {
        PathBuf::from("/")
    } else {
        link.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    for c in target.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !resolved.pop() {
                    return false;
                }
            }
            Component::Normal(n) => resolved.push(n),
        }
    }
    resolved.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dump_vec(p: &Path) -> Vec<u8> {
        let mut v = Vec::new();
        dump(p, &mut v).unwrap();
        v
    }

    #[test]
    fn direct_dump_is_the_same_nar_into_a_file_a_socket_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("big"), vec![7u8; 300_001]).unwrap();
        fs::write(tree.join("sub/small"), b"hello\n").unwrap();
        fs::write(tree.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("big", tree.join("link")).unwrap();
        let want = dump_vec(&tree);
        let mut mem = Vec::new();
        assert_eq!(dump_direct(&tree, &mut mem).unwrap(), want.len() as u64);
        assert_eq!(mem, want);
        let out = dir.path().join("out.nar");
        let mut file = io::BufWriter::with_capacity(64, fs::File::create(&out).unwrap());
        dump_direct(&tree, &mut file).unwrap();
        drop(file);
        assert_eq!(fs::read(&out).unwrap(), want);
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut b = b;
            b.read_to_end(&mut got).unwrap();
            got
        });
        dump_direct(&tree, io::BufWriter::new(&mut a)).unwrap();
        drop(a);
        assert_eq!(reader.join().unwrap(), want);
    }

    #[test]
    fn hello_file_matches_nix() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hello.txt");
        fs::write(&f, "hello\n").unwrap();
        let nar = dump_vec(&f);
        assert_eq!(nar.len(), 120);
        assert_eq!(
            Hash::digest(HashAlgo::Sha256, &nar).to_nix32(),
            "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw"
        );
        let (h, n) = hash_path(&f, HashAlgo::Sha256).unwrap();
        assert_eq!((h, n), (Hash::digest(HashAlgo::Sha256, &nar), 120));
        let mut v = Vec::new();
        dump_bytes(b"hello\n", false, &mut v).unwrap();
        assert_eq!(v, nar);
    }

    #[test]
    fn writer_matches_dump_and_refuses_disorder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a"), "A").unwrap();
        fs::write(root.join("sub/x"), "xx").unwrap();
        fs::set_permissions(root.join("sub/x"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("../a", root.join("sub/y")).unwrap();
        let mut w = NarWriter::new(Vec::new()).unwrap();
        w.begin_directory().unwrap();
        w.begin_entry(b"a").unwrap();
        w.regular(false, b"A").unwrap();
        w.end_entry().unwrap();
        w.begin_entry(b"sub").unwrap();
        w.begin_directory().unwrap();
        w.begin_entry(b"x").unwrap();
        w.regular(true, b"xx").unwrap();
        w.end_entry().unwrap();
        w.begin_entry(b"y").unwrap();
        w.symlink(b"../a").unwrap();
        w.end_entry().unwrap();
        w.end_directory().unwrap();
        w.end_entry().unwrap();
        w.end_directory().unwrap();
        let (n, bytes) = w.finish().unwrap();
        assert_eq!(bytes, dump_vec(&root));
        assert_eq!(n, bytes.len() as u64);

        let mut w = NarWriter::new(Vec::new()).unwrap();
        w.begin_directory().unwrap();
        w.begin_entry(b"b").unwrap();
        w.regular(false, b"").unwrap();
        w.end_entry().unwrap();
        assert!(matches!(w.begin_entry(b"a"), Err(NarError::Malformed { .. })));
        assert!(matches!(w.begin_entry(b"b"), Err(NarError::Malformed { .. })));
        assert!(matches!(w.begin_entry(b"c/d"), Err(NarError::Malformed { .. })));
        let mut w = NarWriter::new(Vec::new()).unwrap();
        assert!(matches!(w.begin_entry(b"a"), Err(NarError::Malformed { .. })));
    }

    fn restore_err(nar: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        restore(&mut &nar[..], &dir.path().join("out"), &RestoreOptions::default()).unwrap_err().to_string()
    }

    fn s(v: &mut Vec<u8>, x: &[u8]) {
        v.extend_from_slice(&(x.len() as u64).to_le_bytes());
        v.extend_from_slice(x);
        v.resize(v.len() + padding(x.len() as u64), 0);
    }

    fn dir_nar(names: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for t in [&b"nix-archive-1"[..], b"(", b"type", b"directory"] {
            s(&mut v, t);
        }
        for n in names {
            for t in [
                &b"entry"[..],
                b"(",
                b"name",
                n,
                b"node",
                b"(",
                b"type",
                b"symlink",
                b"target",
                b"x",
                b")",
                b")",
            ] {
                s(&mut v, t);
            }
        }
        s(&mut v, b")");
        v
    }

    #[test]
    fn hashing_a_tree_equals_hashing_its_dump() {
        // Files larger than a chunk, ending on and off chunk boundaries, empty, executable, plus a symlink.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        fs::create_dir_all(root.join("sub")).unwrap();
        let big: Vec<u8> = (0..(CHUNK * 2 + 77)).map(|i| (i * 31 % 251) as u8).collect();
        fs::write(root.join("a-big"), &big).unwrap();
        fs::write(root.join("b-exact"), &big[..CHUNK]).unwrap();
        fs::write(root.join("sub/empty"), b"").unwrap();
        fs::write(root.join("sub/x"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("sub/x"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("../a-big", root.join("sub/link")).unwrap();
        let nar = dump_vec(&root);
        for algo in [HashAlgo::Sha256, HashAlgo::Sha512, HashAlgo::Md5] {
            let (h, n) = hash_path(&root, algo).unwrap();
            assert_eq!((h, n), (Hash::digest(algo, &nar), nar.len() as u64));
        }
    }

    #[test]
    fn strict_reader() {
        assert!(restore_err(&dir_nar(&[b"b", b"a"])).contains("not sorted"));
        assert!(restore_err(&dir_nar(&[b"a", b"a"])).contains("duplicate"));
        for bad in [&b".."[..], b".", b"a/b", b"a\0b", b""] {
            assert!(restore_err(&dir_nar(&[bad])).contains("invalid entry name"), "{bad:?}");
        }
        let mut good = dir_nar(&[b"a", b"b"]);
        let dir = tempfile::tempdir().unwrap();
        restore(&mut &good[..], &dir.path().join("ok"), &RestoreOptions::default()).unwrap();
        validate(&mut &good[..]).unwrap();
        // Corrupt the padding after "nix-archive-1" (13 bytes + 3 zero bytes).
        good[8 + 13] = 1;
        assert!(restore_err(&good).contains("padding"));
        assert!(restore_err(&dir_nar(&[b"a"])[..40]).contains("end of the stream"));
        assert!(restore_err(b"garbage!").contains("malformed"));
    }

    #[test]
    fn escaping_symlinks_are_rejected_when_confined() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        for (i, target) in ["../../etc/passwd", "/etc/passwd"].iter().enumerate() {
            let l = src.join(format!("l{i}"));
            std::os::unix::fs::symlink(target, &l).unwrap();
            let nar = dump_vec(&l);
            let opts = RestoreOptions {
                read_only: false,
                confine_symlinks: Some(SymlinkConfinement { logical: "/s/abc-x".into(), root: "/s".into() }),
            };
            let err = restore(&mut &nar[..], &dir.path().join(format!("o{i}")), &opts).unwrap_err();
            assert!(matches!(err, NarError::EscapingSymlink { .. }), "{err}");
        }
        assert!(stays_within(Path::new("/s/abc-x/lib/l"), Path::new("../../def-y/lib"), Path::new("/s")));
        assert!(stays_within(Path::new("/s/abc-x/l"), Path::new("/s/def-y"), Path::new("/s")));
    }

    #[derive(Debug, Clone)]
    enum Node {
        File(Vec<u8>, bool),
        Link(String),
        Dir(Vec<(String, Node)>),
    }

    fn node() -> impl Strategy<Value = Node> {
        let leaf = prop_oneof![
            (proptest::collection::vec(any::<u8>(), 0..40), any::<bool>())
                .prop_map(|(c, x)| Node::File(c, x)),
            "[a-z./]{1,12}".prop_map(Node::Link),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            proptest::collection::btree_map("[A-Za-z0-9._é-]{1,8}", inner, 0..5)
                .prop_map(|m| Node::Dir(m.into_iter().filter(|(k, _)| k != "." && k != "..").collect()))
        })
    }

    fn build(path: &Path, n: &Node) {
        match n {
            Node::File(c, x) => {
                fs::write(path, c).unwrap();
                fs::set_permissions(path, fs::Permissions::from_mode(if *x { 0o755 } else { 0o644 }))
                    .unwrap();
            }
            Node::Link(t) => std::os::unix::fs::symlink(t, path).unwrap(),
            Node::Dir(es) => {
                fs::create_dir(path).unwrap();
                for (k, v) in es {
                    build(&path.join(k), v);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trip(n in node()) {
            let dir = tempfile::tempdir().unwrap();
            let a = dir.path().join("a");
            build(&a, &n);
            let nar = dump_vec(&a);
            validate(&mut &nar[..]).unwrap();
            let b = dir.path().join("b");
            let mut r = HashingReader::new(&nar[..], HashAlgo::Sha256);
            restore(&mut r, &b, &RestoreOptions { read_only: true, confine_symlinks: None }).unwrap();
            let (h, size) = r.finish();
            prop_assert_eq!(size, nar.len() as u64);
            prop_assert_eq!(h, Hash::digest(HashAlgo::Sha256, &nar));
            prop_assert_eq!(dump_vec(&b), nar);
            make_writable(&b);
        }
    }

    fn make_writable(p: &Path) {
        if fs::symlink_metadata(p).unwrap().is_dir() {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
            for e in fs::read_dir(p).unwrap() {
                make_writable(&e.unwrap().path());
            }
        }
    }
}
