//! store: a Nix-compatible content-addressed store.
//!
//! Pure formats first ([`nix32`], [`hash`], [`nar`], [`store_path`]), byte-for-byte compatible with Nix 2.8 and
//! checked against golden vectors from real Nix. On them the local [`Store`]: a configurable store directory
//! ([`StoreConfig`]), a SQLite database with Nix's schema, reference scanning, closures, garbage collection,
//! profiles, verification and optimisation. This crate depends on no other crate of the workspace; `pkgs` and `cli`
//! build on it.
//!
//! ```no_run
//! # fn main() -> Result<(), store::StoreError> {
//! let store = store::Store::open(store::StoreConfig::from_env()?)?;
//! let path = store.add_tree("hello-1.0", std::path::Path::new("/tmp/hello"), &[])?;
//! store.add_root(std::path::Path::new("/tmp/hello-result"), &path)?;
//! println!("{}", path.to_absolute().display());
//! # Ok(()) }
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod config;
mod db;
pub mod derivation;
mod error;
mod export;
pub mod fsutil;
pub mod gc;
pub mod hash;
mod local;
pub mod nar;
pub mod nix32;
pub mod profile;
pub mod refscan;
mod roots;
pub mod store_path;
pub mod verify;

pub use config::StoreConfig;
pub use db::{Graph, PathInfo};
pub use derivation::{Derivation, DerivationOutput, FixedOutputHash, OutputHashMode};
pub use error::{Result, StoreError};
pub use gc::{GcOptions, GcResult, Root};
pub use hash::{Hash, HashAlgo, HashFormat};
pub use local::{BuiltOutput, NarMetadata, PreparedTree, ScratchDir, Store, now};
pub use profile::{DeleteSpec, Generation, Profile};
pub use store_path::{ContentAddress, FileIngestion, StoreDir, StorePath};
pub use verify::{OptimiseReport, Problem, VerifyReport};
