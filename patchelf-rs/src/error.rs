//! Errors of the ELF engine: malformed input, operations the file cannot support, and I/O.
//!
//! Messages follow patchelf's wording where patchelf has one, so scripts matching on them keep working; the front end
//! (`cli.rs`) prefixes them with the program name and the file.

use std::io;
use std::path::PathBuf;

/// The file is not a well-formed ELF image (truncated, offsets out of range, absurd counts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("{0}")]
    OutOfBounds(&'static str),
    #[error("{0}")]
    Invalid(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// A structure the operation needs is absent (patchelf: "cannot find section ...").
    #[error("cannot find section '{name}'{hint}")]
    Missing { name: &'static str, hint: &'static str },
    /// The operation cannot be carried out on this file or with these arguments.
    #[error("{0}")]
    Unsupported(String),
    #[error("{action} '{}': {}", path.display(), strerror(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { action, path: path.into(), source }
    }

    pub(crate) fn no_dynamic() -> Error {
        Error::Missing { name: ".dynamic", hint: ". The input file is most likely statically linked" }
    }

    pub(crate) fn no_interp() -> Error {
        Error::Missing { name: ".interp", hint: ". The input file is most likely statically linked" }
    }

    /// Whether the message already names the file (I/O errors do); others get the file name prefixed.
    pub fn names_path(&self) -> bool {
        matches!(self, Error::Io { .. })
    }
}

/// The C library's wording of an OS error (`No such file or directory`), as patchelf prints it.
pub fn strerror(e: &io::Error) -> String {
    if let Some(code) = e.raw_os_error() {
        let s = io::Error::from_raw_os_error(code).to_string();
        return s.find(" (os error ").map_or_else(|| s.clone(), |i| s[..i].to_string());
    }
    // Wrapped errors (the temp-file crate adds "at path …") read "<strerror> (os error N)<context>": keep the
    // C library's part only, since our message names the path itself.
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
