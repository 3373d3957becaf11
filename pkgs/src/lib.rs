//! pkgs: package sources.
//!
//! Reads Debian-format apt repositories (signed `InRelease`, `Packages`, `Contents`), resolves dependencies, fetches
//! and verifies `.deb` files and unpacks them into the store as one path per package, and answers which package
//! provides a soname. It builds on `store` (paths, registration) and `patchelf-rs` (ELF needs).
//!
//! Not implemented yet: the package sources arrive with their issue.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]
