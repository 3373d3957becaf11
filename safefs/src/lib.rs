//! safefs: the two file-system chores every crate of the workspace needs, done one way.
//!
//! - [`write`]: writing a file so that no reader (and no crash of the writer) ever sees half of it: a temporary
//!   file beside the target, an fsync policy chosen by the caller ([`Durability`]), a rename into place, and a
//!   clear rule for targets that are not regular files ([`NonRegular`]).
//! - [`root`]: resolving a path inside a directory tree as if that tree were `/` ([`resolve_in_root`]): absolute
//!   symlink targets restart at the root and `..` never climbs above it.
//!
//! It depends on no other crate of the workspace, so every crate may use it (the lowest ones included).
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod root;
pub mod write;

pub use root::{Follow, resolve_in_root};
pub use write::{AtomicFile, Durability, NonRegular, WriteOptions, temp_path_beside, write_file};
