//! fhsenv: declared FHS environments.
//!
//! Turns an environment spec (`spec`: a list of package directories plus options) into an FHS tree (`tree`): a
//! symlink farm for `/usr`, `/lib*`, `/bin`, `/etc` with an `ld.so.cache` written by our own writer (`ldcache`), and
//! enters that tree with user and mount namespaces (`plan` → `mount`, `userns`, `launch`), optionally sandboxed with
//! Landlock (`sandbox`). `isolate` starts one process in fresh namespaces over a prepared root from a caller that
//! may have threads (the builder's sandbox). `interp` runs a program through another loader mounted at its own
//! interpreter path (how `fhskit run`'s shim strategy keeps `/proc/self/exe` the program's). It takes plain paths
//! and never touches the store: `cli` decides where built trees live. Every ELF fact (a library's class, machine and
//! soname) comes from `patchelf-rs`'s read API.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod doctor;
pub mod error;
pub mod interp;
pub mod isolate;
pub mod launch;
pub mod ldcache;
pub mod mount;
pub mod plan;
pub mod profile;
pub mod sandbox;
pub mod spec;
pub mod tree;
pub mod userns;

pub use error::{Error, Result};
pub use spec::EnvSpec;
pub use tree::{BuildReport, BuiltEnv, Conflict, build};
