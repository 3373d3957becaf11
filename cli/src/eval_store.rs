//! `EvalIo` on the fhskit store, for `fhskit eval` and `fhskit instantiate`.
//!
//! Reads go to the file system (through `eval::FsIo`, which maps logical store paths of a chroot store to their
//! files under the root). What the evaluator adds (`.drv` files, `toFile`, `path`, `filterSource`, fetched files
//! and tarballs) is registered in the store with the content address the evaluator hashed it with, references
//! included, and the store's path must equal the evaluator's: a disagreement is an error, never a second path.
//! URLs are fetched with the HTTP client of `pkgs`, and what a URL gave is remembered in the store's state
//! directory (`fetcher-cache/`) for the evaluator's `tarball-ttl` logic. The store is opened on first use, so an
//! evaluation that adds nothing leaves no trace. Without a store (`dummy://`) nothing can be added.

use std::io;
use std::path::Path;

use eval::io::{CachedDownload, Download, StoreObject, Validators};
use eval::{EvalIo, FileKind, FsIo};
use store::{FileIngestion, HashAlgo, ScratchDir, Store, StoreConfig, StorePath};

/// The evaluator's IO on the store described by `config` (opened on the first write), or on no store at all.
pub struct StoreIo {
    fs: FsIo,
    config: Option<StoreConfig>,
    store: Option<Store>,
    http: Option<pkgs::http::Http>,
    /// Unpacked tarballs, removed with this value.
    unpacked: Vec<ScratchDir>,
    /// The Debian package records of fhskit's package set, read on first use.
    debian: Option<pkgs::nixpkgs::Source>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl StoreIo {
    /// `config: None` is the dummy store: `/nix/store` paths, nothing written.
    pub fn new(config: Option<StoreConfig>, trace_sink: fn(&str)) -> StoreIo {
        let mut fs = match &config {
            Some(c) => FsIo::new(c.physical_store_dir(), c.store_dir.as_str()),
            None => FsIo::new("/nix/store".into(), "/nix/store"),
        };
        fs.trace_sink = Some(trace_sink);
        StoreIo { fs, config, store: None, http: None, unpacked: Vec::new(), debian: None }
    }

    fn store(&mut self) -> io::Result<&Store> {
        let store = match self.store.take() {
            Some(store) => store,
            None => {
                let Some(config) = &self.config else {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the dummy store (dummy://) cannot hold anything",
                    ));
                };
                Store::open(config.clone()).map_err(other)?
            }
        };
        Ok(self.store.insert(store))
    }

    /// Where the fetcher cache keeps what `url` gave: one small file per URL in the store's state directory.
    fn cache_file(&mut self, url: &str) -> Option<std::path::PathBuf> {
        let dir = self.store().ok()?.state_dir().join("fetcher-cache");
        Some(dir.join(store::hash::hex(&store::hash::sha256(url.as_bytes()))))
    }

    fn add(&mut self, name: &str, object: StoreObject<'_>) -> Result<StorePath, Box<dyn std::error::Error>> {
        // A source inside a chroot store is read under its root.
        let disk = match object {
            StoreObject::Tree { src, .. } => Some(self.fs.on_disk(src).into_owned()),
            _ => None,
        };
        let store = self.store()?;
        Ok(match object {
            StoreObject::Text { contents, references } => {
                let refs = references.iter().map(|r| store.parse_path(r)).collect::<Result<Vec<_>, _>>()?;
                store.add_text(name, contents, &refs)?
            }
            StoreObject::Flat { contents, algo } => {
                let scratch = store.scratch_dir()?;
                let file = scratch.path().join("file");
                std::fs::write(&file, contents)?;
                store.add_fixed(name, &file, FileIngestion::Flat, HashAlgo::parse(algo.name())?)?
            }
            StoreObject::Tree { include: None, .. } => {
                store.add_tree(name, disk.as_deref().unwrap_or(Path::new("")), &[])?
            }
            StoreObject::Tree { src, include: Some(include) } => {
                let disk = disk.unwrap_or_default();
                // The filter kept logical paths; under a chroot store's root they move with the source.
                let root = disk.to_string_lossy();
                let moved: std::collections::HashSet<String>;
                let include = if root == src {
                    include
                } else {
                    moved = include.iter().map(|p| p.replacen(src, &root, 1)).collect();
                    &moved
                };
                let scratch = store.scratch_dir()?;
                let staged = scratch.path().join("tree");
                eval::io::copy_tree(&disk, &staged, Some(include))?;
                let tree = store.prepare_tree(&staged)?;
                store.add_prepared(name, tree, &[])?
            }
        })
    }
}

impl EvalIo for StoreIo {
    fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        self.fs.read_file(path)
    }

    fn read_dir(&self, path: &str) -> io::Result<Vec<(String, FileKind)>> {
        self.fs.read_dir(path)
    }

    fn file_kind(&self, path: &str) -> io::Result<FileKind> {
        self.fs.file_kind(path)
    }

    fn read_link(&self, path: &str) -> io::Result<String> {
        self.fs.read_link(path)
    }

    fn canonicalize(&self, path: &str) -> io::Result<String> {
        self.fs.canonicalize(path)
    }

    fn add_to_store(&mut self, store_path: &str, object: StoreObject<'_>) -> io::Result<()> {
        let dir = self.fs.store_dir.clone();
        if store_path.strip_prefix(dir.as_str()).and_then(|r| r.strip_prefix('/')).is_none() {
            return Err(other(format!(
                "it is not in the store directory {dir} (paths computed for another --store-dir cannot be added)"
            )));
        }
        // The evaluator computed the path from the object, so a valid path holds it already: a `.drv` written by an
        // earlier run costs one lookup, not the store's whole write (its lock and a check of every reference).
        if self.is_valid_path(store_path) {
            return Ok(());
        }
        let base = store_path.rsplit('/').next().unwrap_or(store_path);
        let name = base.split_once('-').map_or(base, |(_, n)| n);
        let got = self.add(name, object).map_err(other)?;
        if got.to_string() == store_path {
            self.fs.valid.borrow_mut().insert(store_path.to_string());
        }
        if got.to_string() != store_path {
            return Err(other(format!("the store computed {got} for it (a bug: please report it)")));
        }
        Ok(())
    }

    fn fetch_url(&mut self, url: &str) -> io::Result<Vec<u8>> {
        match self.fetch_url_conditional(url, &Validators::default())? {
            Download::Fetched { body, .. } => Ok(body),
            Download::NotModified => Err(other("the server answered 'not modified' to a plain request")),
        }
    }

    fn fetch_url_conditional(&mut self, url: &str, have: &Validators) -> io::Result<Download> {
        if url.starts_with("file://") {
            return self.fs.fetch_url_conditional(url, have);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only file, http and https URLs are supported",
            ));
        }
        let http = match self.http.take() {
            Some(http) => http,
            None => pkgs::http::Http::new().map_err(other)?,
        };
        let have =
            pkgs::http::Validators { etag: have.etag.clone(), last_modified: have.last_modified.clone() };
        let answer = self.http.insert(http).get_conditional(url, &have, u64::MAX).map_err(|e| match e {
            pkgs::Error::Http { reason, .. } => other(reason),
            e => other(e),
        })?;
        Ok(match answer {
            None => return Err(other("server answered 404 Not Found")),
            Some(pkgs::http::Conditional::NotModified) => Download::NotModified,
            Some(pkgs::http::Conditional::Fetched { body, validators }) => Download::Fetched {
                body,
                validators: Validators { etag: validators.etag, last_modified: validators.last_modified },
            },
        })
    }

    fn is_valid_path(&mut self, store_path: &str) -> bool {
        if self.fs.valid.borrow().contains(store_path) {
            return true;
        }
        let Ok(store) = self.store() else { return false };
        // A path the evaluation goes on to use is kept from a concurrent collection, as one it adds is. A path
        // that cannot be rooted counts as missing, so that adding it reports why.
        let valid = store
            .parse_path(store_path)
            .and_then(|p| Ok(store.is_valid(&p)? && store.add_temp_root(&p).is_ok()))
            .unwrap_or(false);
        if valid {
            self.fs.valid.borrow_mut().insert(store_path.to_string());
        }
        valid
    }

    fn query_references(&mut self, store_path: &str) -> Option<Vec<String>> {
        let store = self.store().ok()?;
        let info = store.path_info(&store.parse_path(store_path).ok()?).ok()??;
        Some(info.references.iter().map(|r| r.to_string()).collect())
    }

    fn cached_download(&mut self, url: &str) -> Option<CachedDownload> {
        let text = std::fs::read_to_string(self.cache_file(url)?).ok()?;
        let mut lines = text.lines();
        let (checked_at, store_path) = (lines.next()?.parse().ok()?, lines.next()?.to_string());
        let field = |l: Option<&str>| l.filter(|v| !v.is_empty()).map(str::to_string);
        let validators = Validators { etag: field(lines.next()), last_modified: field(lines.next()) };
        Some(CachedDownload { store_path, validators, checked_at })
    }

    fn record_download(&mut self, url: &str, entry: &CachedDownload) {
        let Some(file) = self.cache_file(url) else { return };
        let v = &entry.validators;
        let text = format!(
            "{}\n{}\n{}\n{}\n",
            entry.checked_at,
            entry.store_path,
            v.etag.as_deref().unwrap_or(""),
            v.last_modified.as_deref().unwrap_or("")
        );
        // A cache that cannot be written only costs a download next time.
        if pkgs::cache::write_atomic(&file, text.as_bytes()).is_err() {
            tracing::debug!("could not write the fetcher cache entry {}", file.display());
        }
    }

    fn unpack_tarball(&mut self, data: &[u8]) -> io::Result<String> {
        // In a scratch directory of the store: removed with this value, or by a collection if this process dies.
        let dir = self.store()?.scratch_dir().map_err(other)?;
        eval::io::unpack_tarball_into(data, dir.path())?;
        let path = dir.path().to_string_lossy().into_owned();
        self.unpacked.push(dir);
        Ok(path)
    }

    fn trace(&mut self, msg: &str) {
        self.fs.trace(msg)
    }

    fn debian_package(&mut self, name: &str, arch: &str) -> io::Result<Option<eval::DebianPackage>> {
        let record = self.debian()?.package(name, arch).map_err(other)?;
        Ok(record.map(|r| {
            let p = r.package;
            eval::DebianPackage {
                url: p.url(),
                name: p.name,
                version: p.version,
                architecture: p.architecture,
                sha256: p.sha256,
                size: p.size,
                component: if p.component.is_empty() { "main".to_owned() } else { p.component },
                description: String::new(),
                depends: r.depends,
            }
        }))
    }

    fn debian_names(&mut self, arch: &str) -> io::Result<Vec<String>> {
        self.debian()?.names(arch).map_err(other)
    }
}

impl StoreIo {
    fn debian(&mut self) -> io::Result<&mut pkgs::nixpkgs::Source> {
        if self.debian.is_none() {
            self.debian = Some(crate::nixpkgs::source().map_err(other)?);
        }
        Ok(self.debian.as_mut().expect("set above"))
    }
}
