//! The evaluator's only door to the outside: reading files, writing store objects, fetching URLs and printing
//! traces go through `EvalIo`. `FsIo` implements it on the plain file system (store objects written under a
//! directory of our choosing, without a database); `cli` implements it on top of the real store.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::formats::HashAlgo;

/// The kind of a directory entry, as `readDir`/`readFileType` report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Regular { executable: bool },
    Directory,
    Symlink,
    Unknown,
}

impl FileKind {
    pub fn nix_name(self) -> &'static str {
        match self {
            FileKind::Regular { .. } => "regular",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Unknown => "unknown",
        }
    }
}

/// Everything the evaluator needs from the world.
pub trait EvalIo {
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>>;
    /// Entries of a directory, sorted by name.
    fn read_dir(&self, path: &str) -> io::Result<Vec<(String, FileKind)>>;
    /// The kind of `path` itself (symlinks not followed).
    fn file_kind(&self, path: &str) -> io::Result<FileKind>;
    fn read_link(&self, path: &str) -> io::Result<String>;
    /// Resolves symlinks in `path`.
    fn canonicalize(&self, path: &str) -> io::Result<String>;
    fn path_exists(&self, path: &str) -> bool {
        self.file_kind(path).is_ok()
    }
    /// Puts `object` into the store at `store_path`, which the evaluator computed from it; a store that computes
    /// another path for it must fail rather than register something else.
    fn add_to_store(&mut self, store_path: &str, object: StoreObject<'_>) -> io::Result<()>;
    /// Downloads a URL and returns its bytes.
    fn fetch_url(&mut self, url: &str) -> io::Result<Vec<u8>>;
    /// Unpacks a tarball (plain or gzip) into a fresh temporary directory and returns its path.
    fn unpack_tarball(&mut self, data: &[u8]) -> io::Result<String>;
    fn get_env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    /// Where `builtins.trace`, `warn` and deprecation messages go.
    fn trace(&mut self, msg: &str);
    /// Whether `store_path` is complete in the store (so a fetch with a known hash need not download it again).
    fn is_valid_path(&mut self, store_path: &str) -> bool {
        let _ = store_path;
        false
    }
    /// The references the store records for `store_path`, if it is valid there.
    fn query_references(&mut self, store_path: &str) -> Option<Vec<String>> {
        let _ = store_path;
        None
    }
    /// What downloading `url` gave last time, if the store remembers it (Nix's fetcher cache).
    fn cached_download(&mut self, url: &str) -> Option<CachedDownload> {
        let _ = url;
        None
    }
    /// Remembers what downloading `url` gave, for `cached_download`.
    fn record_download(&mut self, url: &str, entry: &CachedDownload) {
        let _ = (url, entry);
    }
    /// The Debian package `name` of architecture `arch` (or `all`) as fhskit's package set pins it: from the lock
    /// file, or resolved against the verified index and added to the lock. `Ok(None)`: no such package. Only
    /// fhskit's own IO knows Debian repositories; the default says so.
    fn debian_package(&mut self, name: &str, arch: &str) -> io::Result<Option<DebianPackage>> {
        let _ = (name, arch);
        Err(io::Error::new(io::ErrorKind::Unsupported, "this evaluator has no Debian package source"))
    }
    /// Every Debian package name that `debian_package` can answer for `arch` (sorted, unique).
    fn debian_names(&mut self, arch: &str) -> io::Result<Vec<String>> {
        let _ = arch;
        Err(io::Error::new(io::ErrorKind::Unsupported, "this evaluator has no Debian package source"))
    }
    /// A GET that the server may answer with "not modified" when `have` matches what it would send.
    fn fetch_url_conditional(&mut self, url: &str, have: &Validators) -> io::Result<Download> {
        let _ = have;
        Ok(Download::Fetched { body: self.fetch_url(url)?, validators: Validators::default() })
    }
}

/// One pinned Debian binary package, for the package set's `__fhskitDebianPackage`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebianPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Where the `.deb` is downloaded from.
    pub url: String,
    /// The `.deb`'s SHA-256 (hex) from the signed index.
    pub sha256: String,
    pub size: u64,
    /// The repository component (`main`, `contrib`, `non-free`, `non-free-firmware`).
    pub component: String,
    pub description: String,
    /// The packages its `Pre-Depends` and `Depends` resolved to, as `name:arch`.
    pub depends: Vec<String>,
}

/// What identifies a server's copy of a URL for a conditional request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The answer to a conditional GET.
#[derive(Debug)]
pub enum Download {
    NotModified,
    Fetched { body: Vec<u8>, validators: Validators },
}

/// A remembered download: the store path it became, the server's validators and when it was last checked (Unix
/// seconds), so that it is reused without asking for `tarball-ttl` seconds and revalidated after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedDownload {
    pub store_path: String,
    pub validators: Validators,
    pub checked_at: i64,
}

/// What a store path was computed from, so that a store can register the object with the same content address.
#[derive(Clone, Copy, Debug)]
pub enum StoreObject<'a> {
    /// A text object (`toFile`, `.drv` files) referring to `references` (store paths).
    Text { contents: &'a [u8], references: &'a [String] },
    /// A single file addressed by the flat hash of its contents with `algo` (`fetchurl`, non-recursive `path`).
    Flat { contents: &'a [u8], algo: HashAlgo },
    /// The tree at `src` addressed by the SHA-256 of its NAR (`path`, `filterSource`, `fetchTarball`); with
    /// `include`, only those absolute source paths (and the root) are part of it.
    Tree { src: &'a str, include: Option<&'a HashSet<String>> },
}

/// `EvalIo` on the local file system, writing store objects into `store_root` (the physical directory behind the
/// logical store directory). When the two differ (a chroot store), every read of a path in the logical store
/// directory goes to its file under `store_root`, and symlinks met there are followed inside it.
#[derive(Debug)]
pub struct FsIo {
    pub store_root: PathBuf,
    pub store_dir: String,
    /// Messages from `trace`/`warn`, in order (the caller decides where they go).
    pub traces: Vec<String>,
    /// Print traces to stderr immediately (used by the CLI through `take`), or collect them.
    pub trace_sink: Option<fn(&str)>,
    /// Store paths known to be complete, so that each is looked up once.
    pub valid: std::cell::RefCell<HashSet<String>>,
    /// Directory listings and file kinds already read, kept for the rest of the evaluation as Nix's source
    /// accessor keeps its `lstat` results: a package set reads the same directories again at each bootstrap
    /// stage (nixpkgs' `by-name` tree once per stage), and sources do not change under an evaluation. Only what
    /// was found is kept, so a path the evaluation adds to the store later is seen.
    dirs: std::cell::RefCell<HashMap<String, Vec<(String, FileKind)>>>,
    kinds: std::cell::RefCell<HashMap<String, FileKind>>,
}

impl FsIo {
    pub fn new(store_root: PathBuf, store_dir: &str) -> FsIo {
        FsIo {
            store_root,
            store_dir: store_dir.to_string(),
            traces: Vec::new(),
            trace_sink: None,
            valid: Default::default(),
            dirs: Default::default(),
            kinds: Default::default(),
        }
    }

    fn is_chroot(&self) -> bool {
        self.store_root.as_os_str() != self.store_dir.as_str()
    }

    /// Whether reading `path` needs `resolve`: a logical store path of a chroot store.
    fn in_chroot_store(&self, path: &str) -> bool {
        self.is_chroot()
            && path.strip_prefix(self.store_dir.as_str()).is_some_and(|r| r.is_empty() || r.starts_with('/'))
    }

    /// The file behind `path`: itself, or for a logical store path of a chroot store, its file under the root.
    pub fn on_disk<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, Path> {
        if self.is_chroot()
            && let Some(rest) = path.strip_prefix(self.store_dir.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return std::borrow::Cow::Owned(self.store_root.join(rest.trim_start_matches('/')));
        }
        std::borrow::Cow::Borrowed(Path::new(path))
    }

    /// Resolves the symlinks of a logical path component by component, each link read on disk (`on_disk`), so
    /// that an absolute link into the store stays inside a chroot store's root.
    fn resolve(&self, path: &str) -> io::Result<String> {
        let mut todo: Vec<String> =
            path.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string).collect();
        let mut done = String::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    let cut = done.rfind('/').unwrap_or(0);
                    done.truncate(cut);
                    continue;
                }
                _ => {}
            }
            let next = format!("{done}/{c}");
            let meta = std::fs::symlink_metadata(self.on_disk(&next))?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > 40 {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = std::fs::read_link(self.on_disk(&next))?.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(target.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string));
            } else {
                done = next;
            }
        }
        Ok(if done.is_empty() { "/".to_string() } else { done })
    }

    fn physical(&self, store_path: &str) -> io::Result<PathBuf> {
        let base =
            store_path.strip_prefix(&self.store_dir).and_then(|r| r.strip_prefix('/')).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("'{store_path}' is not in the store"))
            })?;
        Ok(self.store_root.join(base))
    }
}

fn kind_of(meta: &std::fs::Metadata) -> FileKind {
    use std::os::unix::fs::PermissionsExt;
    let ft = meta.file_type();
    if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Directory
    } else if ft.is_file() {
        FileKind::Regular { executable: meta.permissions().mode() & 0o100 != 0 }
    } else {
        FileKind::Unknown
    }
}

/// Copies the tree at `src` to `dst` (which must not exist), read-only as in a store; with `include`, only those
/// absolute source paths below the root.
pub fn copy_tree(src: &Path, dst: &Path, include: Option<&HashSet<String>>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(src)?;
    match kind_of(&meta) {
        FileKind::Symlink => std::os::unix::fs::symlink(std::fs::read_link(src)?, dst),
        FileKind::Directory => {
            std::fs::create_dir(dst)?;
            for e in std::fs::read_dir(src)? {
                let e = e?;
                let p = e.path();
                if let Some(inc) = include
                    && !inc.contains(p.to_string_lossy().as_ref())
                {
                    continue;
                }
                copy_tree(&p, &dst.join(e.file_name()), include)?;
            }
            Ok(())
        }
        FileKind::Regular { executable } => {
            std::fs::copy(src, dst)?;
            std::fs::set_permissions(
                dst,
                std::fs::Permissions::from_mode(if executable { 0o555 } else { 0o444 }),
            )
        }
        FileKind::Unknown => {
            Err(io::Error::other(format!("file '{}' has an unsupported type", src.display())))
        }
    }
}

impl EvalIo for FsIo {
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        if self.in_chroot_store(path) {
            return std::fs::read(self.on_disk(&self.resolve(path)?));
        }
        std::fs::read(path)
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<(String, FileKind)>> {
        if let Some(entries) = self.dirs.borrow().get(path) {
            return Ok(entries.clone());
        }
        let resolved;
        let dir = if self.in_chroot_store(path) {
            resolved = self.resolve(path)?;
            self.on_disk(&resolved)
        } else {
            std::borrow::Cow::Borrowed(Path::new(path))
        };
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            // The entry's type comes with it; only a regular file needs its mode (the executable bit), read
            // relative to the open directory.
            let ft = e.file_type()?;
            let kind = if ft.is_file() {
                kind_of(&e.metadata()?)
            } else if ft.is_dir() {
                FileKind::Directory
            } else if ft.is_symlink() {
                FileKind::Symlink
            } else {
                FileKind::Unknown
            };
            out.push((e.file_name().to_string_lossy().into_owned(), kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kinds = self.kinds.borrow_mut();
        let base = path.trim_end_matches('/');
        for (name, kind) in &out {
            kinds.insert(format!("{base}/{name}"), *kind);
        }
        // The store directory itself grows as the evaluation adds to it.
        let store = |d: &str| d == self.store_dir.trim_end_matches('/') || Path::new(d) == self.store_root;
        if !store(base) {
            self.dirs.borrow_mut().insert(path.to_string(), out.clone());
        }
        Ok(out)
    }

    fn file_kind(&self, path: &str) -> io::Result<FileKind> {
        if let Some(kind) = self.kinds.borrow().get(path) {
            return Ok(*kind);
        }
        let kind = kind_of(&std::fs::symlink_metadata(self.on_disk(path))?);
        self.kinds.borrow_mut().insert(path.to_string(), kind);
        Ok(kind)
    }

    fn read_link(&self, path: &str) -> io::Result<String> {
        Ok(std::fs::read_link(self.on_disk(path))?.to_string_lossy().into_owned())
    }

    fn canonicalize(&self, path: &str) -> io::Result<String> {
        if self.in_chroot_store(path) {
            return self.resolve(path);
        }
        match std::fs::canonicalize(path) {
            Ok(p) => Ok(p.to_string_lossy().into_owned()),
            // A host symlink into a chroot store's logical directory (a `result` link) resolves inside its root.
            Err(e) if self.is_chroot() => self.resolve(path).map_err(|_| e),
            Err(e) => Err(e),
        }
    }

    fn add_to_store(&mut self, store_path: &str, object: StoreObject<'_>) -> io::Result<()> {
        let target = self.physical(store_path)?;
        if target.symlink_metadata().is_ok() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.store_root)?;
        match object {
            StoreObject::Text { contents, .. } | StoreObject::Flat { contents, .. } => {
                safefs::write_file(&target, contents, &safefs::WriteOptions::default().mode(0o444))
            }
            StoreObject::Tree { src, include } => {
                let tmp = safefs::temp_path_beside(&target);
                if let Err(e) = copy_tree(Path::new(src), &tmp, include) {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(e);
                }
                std::fs::rename(&tmp, &target)
            }
        }
    }

    fn fetch_url_conditional(&mut self, url: &str, have: &Validators) -> io::Result<Download> {
        // A file's modification time stands in for the server's validators.
        let stamp = url
            .strip_prefix("file://")
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()));
        if stamp.is_some() && have.last_modified == stamp {
            return Ok(Download::NotModified);
        }
        let body = self.fetch_url(url)?;
        Ok(Download::Fetched { body, validators: Validators { etag: None, last_modified: stamp } })
    }

    fn fetch_url(&mut self, url: &str) -> io::Result<Vec<u8>> {
        match url.strip_prefix("file://") {
            Some(path) => std::fs::read(path),
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("unsupported URL '{url}': this evaluator reads file:// URLs only"),
            )),
        }
    }

    fn unpack_tarball(&mut self, data: &[u8]) -> io::Result<String> {
        let dir =
            std::env::temp_dir().join(format!("fhskit-eval-unpack-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir)?;
        unpack_tarball_into(data, &dir)?;
        Ok(dir.to_string_lossy().into_owned())
    }

    fn is_valid_path(&mut self, store_path: &str) -> bool {
        self.physical(store_path).is_ok_and(|p| p.symlink_metadata().is_ok())
    }

    fn trace(&mut self, msg: &str) {
        match self.trace_sink {
            Some(f) => f(msg),
            None => self.traces.push(msg.to_string()),
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Unpacks a tar archive (plain, gzip, xz or zstd, recognised by its first bytes) into the existing directory
/// `dir`.
pub fn unpack_tarball_into(data: &[u8], dir: &Path) -> io::Result<()> {
    let reader: Box<dyn Read> = if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(data))
    } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new(data))
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(ruzstd::decoding::StreamingDecoder::new(data).map_err(io::Error::other)?)
    } else {
        Box::new(data)
    };
    let mut archive = tar::Archive::new(reader);
    // Store objects have no times; setting each file's would only cost system calls.
    archive.set_preserve_mtime(false);
    archive.unpack(dir)
}
