//! ld-shim: a loader shim installed as a program's `PT_INTERP` (e.g. `/lib64/ld-linux-x86-64.so.2`) that maps the
//! real `ld.so` named by nix-ld's variables, a config file or a compiled-in default, hands it the configured library
//! path, and hides that path from the program's children.
//!
//! This library holds the pure, syscall-free parts, unit tested on the host: the ELF checks and the mapping plan for
//! the real loader ([`elf`]), the config file format ([`config`]), the supported systems and install paths
//! ([`system`]) and bounded byte buffers ([`buf`]). The `ld-shim` executable lives in `bin/`, a package with its own
//! workspace (no_std, no libc, static-pie, `panic = "abort"`) that uses this library; the build script builds it and
//! [`embedded`] carries the result. `fhskit shim install` (in `cli`) uses [`embedded`], [`config`], [`system`] and
//! [`elf::is_shim`] to install and recognise the shim. It depends on no other crate of the workspace.
#![no_std]
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

#[cfg(test)]
extern crate std;

pub mod buf;
pub mod config;
pub mod elf;
pub mod embedded;
pub mod system;
