//! fhsenv: declared FHS environments.
//!
//! Turns an environment spec (a list of package directories plus options) into an FHS tree — a symlink farm for
//! `/usr`, `/lib*`, `/bin`, `/etc` with an `ld.so.cache` written by our own writer — and enters that tree with user and
//! mount namespaces, optionally sandboxed with Landlock. It takes plain paths and never touches the store: `cli` puts
//! the built tree in the store. It may use `patchelf-rs` to read ELF classes and sonames.
//!
//! Not implemented yet: the environment builder and launcher arrive with their issue.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]
