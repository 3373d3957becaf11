//! One module per `fhskit` command; each turns parsed arguments into calls to the libraries.

pub mod build;
pub mod cache;
pub mod env;
pub mod eval;
pub mod generate;
pub mod patch;
pub mod patchelf;
pub mod pkgs;
pub mod profile;
pub mod run;
pub mod shell;
pub mod shim;
pub mod steam_run;
pub mod store;
