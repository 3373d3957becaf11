//! store: a Nix-compatible content-addressed store.
//!
//! Pure formats first ([`nix32`], [`hash`], [`nar`], [`store_path`]), byte-for-byte compatible with Nix 2.8 and
//! checked against golden vectors from real Nix. The local store builds on them. This crate depends on no other
//! crate of the workspace; `pkgs` and `cli` build on it.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod hash;
pub mod nar;
pub mod nix32;
pub mod store_path;

pub use hash::{Hash, HashAlgo, HashFormat};
pub use store_path::{ContentAddress, FileIngestion, StoreDir, StorePath};
