//! The error of binary-cache work: each variant names the failed action and the cache, file or store path involved.

use std::io;

/// Why a binary-cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("NAR info file '{file}' is corrupt: {reason}")]
    CorruptNarInfo { file: String, reason: String },
    #[error("'{url}' is not a valid binary cache URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{what} is corrupt: {reason}")]
    BadKey { what: String, reason: String },
    #[error("binary cache '{url}' is for Nix stores with prefix '{theirs}', not '{ours}'")]
    WrongStoreDir { url: String, theirs: String, ours: String },
    #[error("cannot {action} '{url}': {reason}")]
    Transfer { action: &'static str, url: String, reason: String },
    #[error("'{url}' does not appear to be a binary cache")]
    NotACache { url: String },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the substitute for '{path}' from '{url}' is not signed by any of the keys in 'trusted-public-keys'"
    )]
    Unsigned { path: String, url: String },
    #[error(
        "{what} mismatch importing path '{path}' from '{url}';\n  specified: {expected}\n  got:       {got}"
    )]
    Mismatch { what: &'static str, path: String, url: String, expected: String, got: String },
    #[error("asked '{url}' for '{path}' but got '{got}'")]
    WrongPath { url: String, path: String, got: String },
    #[error("path '{path}' is not in binary cache '{url}'")]
    Missing { path: String, url: String },
    #[error("NAR of '{path}' is missing from binary cache '{url}' ({file})")]
    NarGone { path: String, url: String, file: String },
    #[error("compression '{0}' is not supported (use xz, zstd, bzip2, gzip or none)")]
    Compression(String),
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

pub type Result<T, E = CacheError> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: impl std::fmt::Display + 'a,
) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io { action, path: path.to_string(), source }
}
