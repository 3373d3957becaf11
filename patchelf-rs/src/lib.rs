//! patchelf-rs: ELF reading and minimal-change rewriting.
//!
//! The library reads the headers an edit needs (mapping the file, never reading it whole for a query) and lays out
//! all edits of one call at once. The `patchelf-rs` binary and `fhskit patchelf` are thin front ends over the same
//! engine. It depends on no other crate of the workspace; `fhsenv`, `pkgs` and `cli` use it.
//!
//! Not implemented yet: the engine arrives with its issue.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]
