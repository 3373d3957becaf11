//! store: a Nix-compatible content-addressed store.
//!
//! Pure formats (nix32, hashes, NAR, store paths) and a local store on top of them (SQLite database with Nix's
//! schema, references, closures, garbage collection, profiles). It depends on no other crate of the workspace;
//! `pkgs` and `cli` build on it.
//!
//! Not implemented yet: the formats and the store arrive with their issue.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]
