//! pkgs: package sources.
//!
//! Reads Debian-format apt repositories (signed `InRelease`, `Packages`, `Contents`), resolves dependencies, fetches
//! and verifies `.deb` files and unpacks them into directories that the caller hands to the store (one path per
//! package), and answers which package provides a soname. The `cli` crate glues it to `store`; this crate never
//! prints: progress goes through the [`fetch::Reporter`] trait and logs through `tracing`.
//!
//! Data flow: [`config`] names the repositories, [`index`] downloads and verifies their indexes into the
//! [`cache`], [`packages`] parses them into a [`packages::Universe`], [`resolve`] computes a closure recorded in a
//! [`lock`] file, [`fetch`] downloads the `.deb` files, [`deb`] unpacks them (or [`host`] copies them from the host's
//! dpkg database) and [`soname`] answers "which package ships this library?". [`closure`] puts these together for a
//! program: from the sonames, files and commands it needs to the packages that provide them, recursively, as the
//! loader of an installed system would find them ([`alternatives`] included).
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod alternatives;
pub mod cache;
pub mod closure;
pub mod compression;
pub mod config;
pub mod deb;
pub mod deb822;
pub mod error;
pub mod fetch;
pub mod host;
pub mod http;
pub mod index;
pub mod lock;
pub mod nixpkgs;
pub mod packages;
pub mod realise;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod signature;
pub mod soname;
pub mod version;

pub use error::{Error, Result};
