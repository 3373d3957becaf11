//! cache: Nix-compatible binary caches, so store paths move between machines without rebuilding.
//!
//! Formats first, byte for byte as Nix writes them: [`narinfo`], [`keys`] (ed25519 signatures over a path's
//! fingerprint), [`compression`], [`listing`]. Then a [`BinaryCache`] over one of three [`backend`]s (a local
//! directory, an HTTP server, an S3 bucket), [`copy`] between a local [`store::Store`] and a cache,
//! [`substituter`] (fetching missing paths from the configured caches with signature and `NarHash` checks, an
//! on-disk narinfo cache in [`disk_cache`], [`settings`] from the configuration file and `--option`), and
//! [`serve`], which makes a local store an HTTP binary cache. This crate builds on `store` (which never touches the
//! network); `cli` drives it and draws progress through the [`Progress`] trait.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod backend;
pub mod binary_cache;
pub mod compression;
pub mod copy;
pub mod disk_cache;
mod error;
pub mod keys;
pub mod listing;
pub mod narinfo;
pub mod packages;
pub mod serve;
pub mod settings;
pub mod substituter;

pub use backend::http::HttpClient;
pub use binary_cache::BinaryCache;
pub use compression::Compression;
pub use error::{CacheError, Result};
pub use keys::{PublicKey, SecretKey, TrustedKeys};
pub use narinfo::NarInfo;
pub use settings::Settings;
pub use substituter::{Substituters, SubstitutionReport};

/// How many transfers or compressions run at once by default: the machine's cores.
pub fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Receives progress of long transfers; `cli` draws bars with it. Every method has a no-op default.
pub trait Progress: Send + Sync {
    /// A path's transfer starts; `size` is the expected number of bytes (0 when unknown).
    fn start(&self, _path: &store::StorePath, _size: u64) {}
    /// `bytes` more bytes of a path's transfer went through.
    fn advance(&self, _path: &store::StorePath, _bytes: u64) {}
    /// A path's transfer ended (successfully or not).
    fn finish(&self, _path: &store::StorePath) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
