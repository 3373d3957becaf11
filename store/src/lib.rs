//! store: a Nix-compatible content-addressed store.
//!
//! Pure formats first ([`nix32`], [`hash`], [`nar`], [`store_path`], [`derivation`]'s ATerm), byte-for-byte
//! compatible with Nix and checked against golden vectors from real Nix. They are the one home of Nix's formats in
//! the workspace: `eval` uses them with `default-features = false`, which leaves out everything below (no database,
//! no store on disk). On them, with the `local` feature (the default), the local `Store`: a configurable store directory
//! ([`StoreConfig`]), a SQLite database with Nix's schema, reference scanning, closures, garbage collection,
//! profiles, verification and optimisation. This crate depends on no other crate of the workspace; `pkgs` and `cli`
//! build on it.
//!
//! ```no_run
//! # #[cfg(not(feature = "local"))] fn main() {}
//! # #[cfg(feature = "local")]
//! # fn main() -> Result<(), store::StoreError> {
//! let store = store::Store::open(store::StoreConfig::from_env()?)?;
//! let path = store.add_tree("hello-1.0", std::path::Path::new("/tmp/hello"), &[])?;
//! store.add_root(std::path::Path::new("/tmp/hello-result"), &path)?;
//! println!("{}", path.to_absolute().display());
//! # Ok(()) }
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

// The pure formats layer.
pub mod derivation;
pub mod hash;
pub mod nar;
pub mod nix32;
pub mod store_path;

pub use derivation::{Derivation, DerivationOutput, FixedOutputHash, OutputHashMode};
pub use hash::{Hash, HashAlgo, HashFormat};
pub use store_path::{ContentAddress, FileIngestion, StoreDir, StorePath};

// The store on disk.
#[cfg(feature = "local")]
pub mod config;
#[cfg(feature = "local")]
mod db;
#[cfg(feature = "local")]
mod error;
#[cfg(feature = "local")]
mod export;
#[cfg(feature = "local")]
pub mod fsutil;
#[cfg(feature = "local")]
pub mod gc;
#[cfg(feature = "local")]
mod local;
#[cfg(feature = "local")]
pub mod packages;
#[cfg(feature = "local")]
pub mod profile;
#[cfg(feature = "local")]
pub mod refscan;
#[cfg(feature = "local")]
mod roots;
#[cfg(feature = "local")]
pub mod verify;

#[cfg(feature = "local")]
pub use config::StoreConfig;
#[cfg(feature = "local")]
pub use db::{Graph, PathInfo};
#[cfg(feature = "local")]
pub use error::{Result, StoreError};
#[cfg(feature = "local")]
pub use gc::{GcOptions, GcResult, Root};
#[cfg(feature = "local")]
pub use local::{BuiltOutput, NarMetadata, PreparedTree, ScratchDir, Store, now};
#[cfg(feature = "local")]
pub use profile::{DeleteSpec, Generation, Profile};
#[cfg(feature = "local")]
pub use verify::{OptimiseReport, Problem, VerifyReport};
