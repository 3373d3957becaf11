//! eval: the Nix language.
//!
//! Parses with `rnix`, checks scopes, evaluates lazily, provides the builtins and computes derivations exactly as
//! Nix does. It depends on no other crate of the workspace and reaches files and the store only through an IO trait
//! that `cli` implements on top of `store`.
//!
//! Not implemented yet: the evaluator arrives with its issue.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]
