//! One module per `fhskit` command; each turns parsed arguments into calls to the libraries.

pub mod patchelf;
