//! eval: the Nix language.
//!
//! Parses with `rnix` (`syntax`) and checks scopes (`compile`), evaluates lazily (`eval`, `value`), provides the builtins
//! (`builtins`), prints values (`print`) and computes derivations exactly as Nix does (`derivation`,
//! `store_path`). It depends on no other crate of the workspace and reaches files and the store only through the
//! `EvalIo` trait (`io`), which `cli` implements; `FsIo` is a plain file-system implementation.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod builtins;
pub mod compile;
pub mod derivation;
pub mod error;
pub mod eval;
pub mod io;
pub mod print;
pub mod search_path;
pub mod settings;
pub mod source;
pub mod store_path;
pub mod sym;
mod syntax;
pub mod value;

pub use error::{ErrorKind, EvalError, Result};
pub use eval::{Evaluator, Settings, with_big_stack};
pub use io::{EvalIo, FileKind, FsIo};
pub use value::Value;
