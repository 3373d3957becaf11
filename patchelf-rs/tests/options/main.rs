//! Black-box tests of every patchelf 0.19 option, run against the `patchelf-rs` binary (or `PATCHELF_UNDER_TEST`).
//! Each edit is checked twice: the patched program still runs (or fails exactly where it should), and a normalised
//! readelf dump matches the golden file in `tests/golden/` (re-bless with `FHSKIT_BLESS=1`).
//!
//! Contents:
//! - `cli`: `--version`, `--help`, no arguments, missing files, `@file`, several files, `--output`, `--debug`
//! - `interpreter`: `--set-interpreter`/`--print-interpreter`
//! - `rpath`: `--set/--add/--remove/--shrink/--print-rpath`, `--allowed-rpath-prefixes`, `--force-rpath`
//! - `needed`: `--add/--remove/--replace/--print-needed` (with `.gnu.version_r`)
//! - `dynamic`: `--set/--print-soname`, `--no-default-lib`, `--clear-symbol-version`, `--add-debug-tag`,
//!   `--rename-dynamic-symbols`, `--build-resolution-cache`
//! - `header`: `--print/--set/--clear-execstack`, `--print/--set-os-abi`, `--page-size`, `--no-sort`,
//!   `--no-clobber-old-sections`

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod dynamic;
mod header;
mod interpreter;
mod needed;
mod rpath;
