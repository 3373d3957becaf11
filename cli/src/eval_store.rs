//! `EvalIo` on the fhskit store, for `fhskit eval` and `fhskit instantiate`.
//!
//! Reads go to the file system (through `eval::FsIo`). What the evaluator adds (`.drv` files, `toFile`, `path`,
//! `filterSource`, fetched files and tarballs) is registered in the store with the content address the evaluator
//! hashed it with, references included, and the store's path must equal the evaluator's: a disagreement is an
//! error, never a second path. URLs are fetched with the HTTP client of `pkgs`. The store is opened on first use,
//! so an evaluation that adds nothing leaves no trace.

use std::io;
use std::path::Path;

use eval::io::StoreObject;
use eval::{EvalIo, FileKind, FsIo};
use store::{FileIngestion, HashAlgo, ScratchDir, Store, StoreConfig, StorePath};

/// The evaluator's IO on the store described by `config`, which is opened on the first write.
pub struct StoreIo {
    fs: FsIo,
    config: StoreConfig,
    store: Option<Store>,
    http: Option<pkgs::http::Http>,
    /// Unpacked tarballs, removed with this value.
    unpacked: Vec<ScratchDir>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl StoreIo {
    pub fn new(config: StoreConfig, trace_sink: fn(&str)) -> StoreIo {
        let mut fs = FsIo::new(config.physical_store_dir(), config.store_dir.as_str());
        fs.trace_sink = Some(trace_sink);
        StoreIo { fs, config, store: None, http: None, unpacked: Vec::new() }
    }

    fn store(&mut self) -> io::Result<&Store> {
        let store = match self.store.take() {
            Some(store) => store,
            None => Store::open(self.config.clone()).map_err(other)?,
        };
        Ok(self.store.insert(store))
    }

    fn add(&mut self, name: &str, object: StoreObject<'_>) -> Result<StorePath, Box<dyn std::error::Error>> {
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
            StoreObject::Tree { src, include: None } => store.add_tree(name, Path::new(src), &[])?,
            StoreObject::Tree { src, include: Some(include) } => {
                let scratch = store.scratch_dir()?;
                let staged = scratch.path().join("tree");
                eval::io::copy_tree(Path::new(src), &staged, Some(include))?;
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
        let dir = self.config.store_dir.as_str();
        if store_path.strip_prefix(dir).and_then(|r| r.strip_prefix('/')).is_none() {
            return Err(other(format!(
                "it is not in the store directory {dir} (paths computed for another --store-dir cannot be added)"
            )));
        }
        let base = store_path.rsplit('/').next().unwrap_or(store_path);
        let name = base.split_once('-').map_or(base, |(_, n)| n);
        let got = self.add(name, object).map_err(other)?;
        if got.to_string() != store_path {
            return Err(other(format!("the store computed {got} for it (a bug: please report it)")));
        }
        Ok(())
    }

    fn fetch_url(&mut self, url: &str) -> io::Result<Vec<u8>> {
        if url.starts_with("file://") {
            return self.fs.fetch_url(url);
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
        self.http.insert(http).get(url, u64::MAX).map_err(|e| match e {
            pkgs::Error::Http { reason, .. } => other(reason),
            e => other(e),
        })
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
}
