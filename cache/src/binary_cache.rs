//! One binary cache, whatever its storage: opened from a URL (`file://DIR`, `http(s)://…`, `s3://bucket…`, or a
//! plain directory path) with Nix's store parameters (`compression`, `secret-key`, `priority`, `trusted`, …). It
//! checks `nix-cache-info` (creating it when writing), reads narinfos and NARs (decompressing), and adds store
//! paths: the compressed NAR first under its `FileHash`, the narinfo last, so a narinfo never names a missing NAR.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use store::{Hash, HashAlgo, PathInfo, Store, StoreDir, StorePath};

use crate::backend::file::FileBackend;
use crate::backend::http::{HttpBackend, HttpClient};
use crate::backend::s3::{S3Backend, S3Options};
use crate::backend::{self, Backend, Reader};
use crate::compression::Compression;
use crate::error::{CacheError, Result, io_err};
use crate::keys::SecretKey;
use crate::narinfo::NarInfo;
use crate::packages::PackageMapping;

/// Parameters of a cache URL that are not about where it is.
#[derive(Debug, Clone)]
pub struct CacheParams {
    pub compression: Compression,
    pub compression_level: Option<i32>,
    pub secret_keys: Vec<SecretKey>,
    pub write_nar_listing: bool,
    /// Lower is asked first; `nix-cache-info`'s `Priority` unless the URL sets one.
    pub priority: i64,
    pub want_mass_query: bool,
    /// Accept this cache's paths without signatures.
    pub trusted: bool,
    /// Compress with several threads (large NARs).
    pub parallel_compression: bool,
}

/// What kind of storage a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Http,
    S3,
}

/// An open binary cache.
#[derive(Debug)]
pub struct BinaryCache {
    /// The URL without parameters (the key of the narinfo disk cache).
    url: String,
    kind: Kind,
    backend: Box<dyn Backend>,
    store_dir: StoreDir,
    pub params: CacheParams,
}

/// Splits `url?a=b&c=d`.
fn split_params(url: &str) -> (String, BTreeMap<String, String>) {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(k.to_owned(), percent_decode(v));
    }
    (base.trim_end_matches('/').to_owned(), params)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_bool(url: &str, key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(CacheError::BadUrl {
            url: url.to_owned(),
            reason: format!("{key} must be true or false, not '{v}'"),
        }),
    }
}

/// Reads `nix-cache-info` text: `(StoreDir, WantMassQuery, Priority)`.
pub fn parse_cache_info(text: &str) -> (Option<String>, Option<bool>, Option<i64>) {
    let (mut dir, mut mass, mut prio) = (None, None, None);
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k.trim() {
            "StoreDir" => dir = Some(v.to_owned()),
            "WantMassQuery" => mass = Some(v == "1"),
            "Priority" => prio = v.parse().ok(),
            _ => {}
        }
    }
    (dir, mass, prio)
}

impl BinaryCache {
    /// Opens the cache `url` for a store whose directory is `store_dir`. With `write`, a missing `nix-cache-info`
    /// (and a missing local directory) is created; without, a cache lacking it is refused.
    pub fn open(url: &str, store_dir: &StoreDir, http: &HttpClient, write: bool) -> Result<BinaryCache> {
        let (base, params) = split_params(url);
        let bad = |reason: String| CacheError::BadUrl { url: url.to_owned(), reason };
        let (kind, backend): (Kind, Box<dyn Backend>) = if let Some(rest) = base.strip_prefix("file://") {
            (Kind::File, Box::new(FileBackend::open(Path::new(rest), write)?))
        } else if base.starts_with('/') {
            (Kind::File, Box::new(FileBackend::open(Path::new(&base), write)?))
        } else if base.starts_with("http://") || base.starts_with("https://") {
            (Kind::Http, Box::new(HttpBackend::new(&base, http.clone())))
        } else if let Some(rest) = base.strip_prefix("s3://") {
            let options = S3Options::parse(url, rest, &params)?;
            (Kind::S3, Box::new(S3Backend::new(url, options, http.clone())?))
        } else {
            return Err(bad("use file://DIR, http(s)://HOST/PATH or s3://BUCKET".into()));
        };
        let compression = match params.get("compression") {
            Some(c) => Compression::parse(c).ok_or_else(|| bad(format!("unknown compression '{c}'")))?,
            None => Compression::Xz,
        };
        let mut secret_keys = Vec::new();
        if let Some(files) = params.get("secret-key").or(params.get("secret-keys")) {
            for f in files.split(',').filter(|f| !f.is_empty()) {
                secret_keys.push(SecretKey::read_file(Path::new(f))?);
            }
        }
        let mut cache_params = CacheParams {
            compression,
            compression_level: match params.get("compression-level") {
                Some(l) => {
                    Some(l.parse().map_err(|_| bad(format!("compression-level '{l}' is not a number")))?)
                }
                None => None,
            },
            secret_keys,
            write_nar_listing: params
                .get("write-nar-listing")
                .map(|v| parse_bool(url, "write-nar-listing", v))
                .transpose()?
                .unwrap_or(false),
            priority: 50,
            want_mass_query: false,
            trusted: params
                .get("trusted")
                .map(|v| parse_bool(url, "trusted", v))
                .transpose()?
                .unwrap_or(false),
            parallel_compression: params
                .get("parallel-compression")
                .map(|v| parse_bool(url, "parallel-compression", v))
                .transpose()?
                .unwrap_or(true),
        };
        let cache = BinaryCache {
            url: base.clone(),
            kind,
            backend,
            store_dir: store_dir.clone(),
            params: cache_params.clone(),
        };
        let info = cache.read_text("nix-cache-info", 64 * 1024)?;
        let (dir, mass, prio) = match &info {
            Some(text) => parse_cache_info(text),
            None if write => {
                let text = format!("StoreDir: {store_dir}\n");
                cache
                    .backend
                    .put_bytes("nix-cache-info", text.as_bytes(), backend::MIME_CACHE_INFO)
                    .map_err(|e| match e {
                        CacheError::Transfer { .. } => CacheError::NotACache { url: base.clone() },
                        e => e,
                    })?;
                (Some(store_dir.to_string()), None, None)
            }
            None => return Err(CacheError::NotACache { url: base.clone() }),
        };
        if let Some(dir) = dir
            && dir != store_dir.as_str()
        {
            return Err(CacheError::WrongStoreDir { url: base, theirs: dir, ours: store_dir.to_string() });
        }
        cache_params.priority = match params.get("priority") {
            Some(p) => p.parse().map_err(|_| bad(format!("priority '{p}' is not a number")))?,
            None => prio.unwrap_or(50),
        };
        cache_params.want_mass_query = match params.get("want-mass-query") {
            Some(v) => parse_bool(url, "want-mass-query", v)?,
            None => mass.unwrap_or(false),
        };
        Ok(BinaryCache { params: cache_params, ..cache })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    pub fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    fn read_text(&self, key: &str, max: u64) -> Result<Option<String>> {
        let Some(r) = self.backend.get(key)? else { return Ok(None) };
        let mut buf = Vec::new();
        r.take(max + 1).read_to_end(&mut buf).map_err(|e| CacheError::Transfer {
            action: "read",
            url: format!("{}/{key}", self.url),
            reason: e.to_string(),
        })?;
        if buf.len() as u64 > max {
            return Err(CacheError::Transfer {
                action: "read",
                url: format!("{}/{key}", self.url),
                reason: format!("larger than {max} bytes"),
            });
        }
        String::from_utf8(buf).map(Some).map_err(|_| CacheError::Transfer {
            action: "read",
            url: format!("{}/{key}", self.url),
            reason: "not UTF-8 text".into(),
        })
    }

    /// The narinfo of `path` here, if any; checks that it describes `path`.
    pub fn narinfo(&self, path: &StorePath) -> Result<Option<NarInfo>> {
        let key = format!("{}.narinfo", path.hash_part());
        let Some(text) = self.read_text(&key, 16 * 1024 * 1024)? else { return Ok(None) };
        let info = NarInfo::parse(&self.store_dir, &text, &format!("{}/{key}", self.url))?;
        if info.path != *path {
            return Err(CacheError::WrongPath {
                url: self.url.clone(),
                path: path.to_string(),
                got: info.path.to_string(),
            });
        }
        Ok(Some(info))
    }

    /// True if and only if the cache has a narinfo for `path`.
    pub fn has(&self, path: &StorePath) -> Result<bool> {
        self.backend.exists(&format!("{}.narinfo", path.hash_part()))
    }

    /// The decompressed NAR stream of `info`.
    pub fn nar(&self, info: &NarInfo) -> Result<Reader> {
        let key = info.url.as_str();
        if key.contains("://") {
            return Err(CacheError::BadUrl {
                url: key.to_owned(),
                reason: "absolute NAR URLs are not supported".into(),
            });
        }
        let reader = self.backend.get(key)?;
        let reader = reader.ok_or_else(|| CacheError::NarGone {
            path: info.path.to_string(),
            url: self.url.clone(),
            file: key.to_owned(),
        })?;
        info.compression.decoder(reader)
    }

    /// The package mapping of `key` here, if any ([`crate::packages`]); not yet checked for signatures.
    pub fn package_mapping(&self, key: &str) -> Result<Option<PackageMapping>> {
        let file = PackageMapping::file_name(key);
        let Some(text) = self.read_text(&file, 64 * 1024)? else { return Ok(None) };
        Ok(Some(PackageMapping::parse(&self.store_dir, key, &text, &format!("{}/{file}", self.url))?))
    }

    /// Writes a package mapping, signed with this cache's secret keys (`?secret-key=`, `secret-key-files`).
    pub fn write_package_mapping(&self, mapping: &PackageMapping) -> Result<()> {
        let mut m = mapping.clone();
        for key in &self.params.secret_keys {
            m.sign(key);
        }
        self.backend.put_bytes(
            &PackageMapping::file_name(&m.key),
            m.to_string().as_bytes(),
            backend::MIME_LOG,
        )
    }

    /// Uploads the build log of `drv` as `log/<drv base name>` (`nix store copy-log`).
    pub fn add_log(&self, drv: &StorePath, log: &[u8]) -> Result<()> {
        self.backend.put_bytes(&format!("log/{}", drv.base_name()), log, backend::MIME_LOG)
    }

    /// The build log of `drv` in this cache, if any.
    pub fn log(&self, drv: &StorePath) -> Result<Option<String>> {
        self.read_text(&format!("log/{}", drv.base_name()), 1 << 30)
    }

    /// Compresses the NAR of the valid local path `info` into a temporary file while hashing it, uploads it as
    /// `nar/<FileHash>.nar<ext>` (unless a file of that name exists) with its `.ls` listing when asked, and
    /// returns the signed narinfo to write once the references' narinfos are there.
    pub fn upload_nar(&self, store: &Store, info: &PathInfo) -> Result<NarInfo> {
        let mut narinfo = NarInfo::from_path_info(info);
        let dir = self.backend.temp_dir();
        let tmp = TempFile::new(&dir)?;
        let physical = store.physical_path(&info.path);
        let (file_hash, file_size, nar_hash, nar_size) =
            self.compress_nar(&physical, info.nar_size, tmp.path())?;
        if nar_hash != info.nar_hash || nar_size != info.nar_size {
            return Err(CacheError::Mismatch {
                what: "hash",
                path: info.path.to_string(),
                url: "the local store".into(),
                expected: info.nar_hash.to_sri(),
                got: nar_hash.to_sri(),
            });
        }
        let c = &self.params.compression;
        narinfo.compression = c.clone();
        narinfo.url = format!("nar/{}.nar{}", file_hash.to_nix32(), c.extension());
        narinfo.file_hash = Some(file_hash);
        narinfo.file_size = file_size;
        if !self.backend.exists(&narinfo.url)? {
            self.backend.put_file(&narinfo.url, tmp.path(), backend::MIME_NAR)?;
        }
        if self.params.write_nar_listing {
            let listing = crate::listing::listing(&physical)?;
            let key = format!("{}.ls", info.path.hash_part());
            self.backend.put_bytes(&key, listing.as_bytes(), backend::MIME_LISTING)?;
        }
        for key in &self.params.secret_keys {
            narinfo.sign(key);
        }
        Ok(narinfo)
    }

    /// Writes (or replaces) a narinfo.
    pub fn write_narinfo(&self, info: &NarInfo) -> Result<()> {
        let key = format!("{}.narinfo", info.path.hash_part());
        self.backend.put_bytes(&key, info.to_string().as_bytes(), backend::MIME_NARINFO)
    }

    /// Dumps `path` as a NAR through the compressor into `dest`, hashing both streams: returns (FileHash,
    /// FileSize, NarHash, NarSize).
    fn compress_nar(&self, path: &Path, nar_size: u64, dest: &Path) -> Result<(Hash, u64, Hash, u64)> {
        let file = std::fs::File::create(dest).map_err(io_err("create", dest.display()))?;
        let file_hasher = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        // Several threads only pay for large NARs (xz and zstd split their input into blocks of tens of MiB,
        // and each thread holds its own window); copies compress several small NARs side by side instead.
        let threads =
            if self.params.parallel_compression && nar_size >= 64 << 20 { crate::jobs() as u32 } else { 1 };
        let encoder = crate::compression::encoder_mt(
            &self.params.compression,
            file_hasher,
            self.params.compression_level,
            threads,
        )?;
        let mut nar_hasher = HashingWriter::new(encoder);
        store::nar::dump(path, &mut nar_hasher).map_err(store::StoreError::from)?;
        let (encoder, nar_hash, nar_size) = nar_hasher.finish();
        let file_hasher = encoder.finish().map_err(io_err("compress into", dest.display()))?;
        let (mut buffered, file_hash, file_size) = file_hasher.finish();
        buffered.flush().map_err(io_err("write", dest.display()))?;
        Ok((file_hash, file_size, nar_hash, nar_size))
    }
}

/// A writer that hashes (sha256) and counts what passes through.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: store::hash::Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: store::hash::Hasher::new(HashAlgo::Sha256), count: 0 }
    }

    pub(crate) fn finish(self) -> (W, Hash, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A temporary file removed on drop (unless it was moved away).
pub(crate) struct TempFile(PathBuf);

impl TempFile {
    pub(crate) fn new(dir: &Path) -> Result<TempFile> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::fs::create_dir_all(dir).map_err(io_err("create directory", dir.display()))?;
        Ok(TempFile(dir.join(format!(".fhskit-nar.tmp.{}.{n}", std::process::id()))))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
