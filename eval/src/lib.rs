//! eval: the Nix language.
//!
//! Parses with `rnix` (`syntax`) and checks scopes (`compile`), evaluates lazily (`eval`, `value`), provides the builtins
//! (`builtins`), prints values (`print`) and computes derivations exactly as Nix does (`derivation`).
//! Nix's formats (nix32, hashes, store paths, NAR, ATerm) come from `store`'s pure formats layer (`formats` adapts
//! them), the only crate of the workspace it uses; it reaches files and the store only through the `EvalIo` trait
//! (`io`), which `cli` implements; `FsIo` is a plain file-system implementation.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod builtins;
pub mod compile;
pub mod derivation;
pub mod error;
pub mod eval;
pub mod formats;
pub mod io;
pub mod print;
pub mod search_path;
pub mod settings;
pub mod source;
pub mod sym;
mod syntax;
pub mod value;

pub use error::{ErrorKind, EvalError, Result};
pub use eval::{Evaluator, Settings, with_big_stack};
pub use io::{DebianPackage, EvalIo, FileKind, FsIo};
pub use value::Value;
