//! The error type of the package sources: one variant per failed action, each naming the file or URL involved.

use std::path::PathBuf;

/// Everything that can go wrong while reading repositories, resolving, fetching or unpacking packages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },

    #[error("invalid configuration in {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("invalid repository specification '{spec}': {reason}")]
    RepoSpec { spec: String, reason: String },

    #[error("no package repository is configured")]
    NoRepository,

    #[error("cannot download {url}: {reason}")]
    Http { url: String, reason: String },

    #[error("cannot read keyring {path}: {reason}")]
    Keyring { path: PathBuf, reason: String },

    #[error("signature check failed for {url}: {reason}")]
    Signature { url: String, reason: String },

    #[error("release file {url} expired on {valid_until} (Valid-Until)")]
    Expired { url: String, valid_until: String },

    #[error("invalid release file {url}: {reason}")]
    Release { url: String, reason: String },

    #[error("{what} {url} does not match the release file: {reason}")]
    Mismatch { what: &'static str, url: String, reason: String },

    #[error("cannot decompress {path}: {reason}")]
    Decompress { path: String, reason: String },

    #[error("invalid {what} in {path}: {reason}")]
    Parse { what: &'static str, path: String, reason: String },

    #[error("no index for {repo}: run 'fhskit pkgs update' first")]
    NoIndex { repo: String },

    #[error("cannot resolve {package}: {reason}")]
    Resolve { package: String, reason: String },

    #[error("invalid lock file {path}: {reason}")]
    Lock { path: PathBuf, reason: String },

    #[error("unsafe .deb {path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },

    #[error("cannot unpack {path}: {reason}")]
    Unpack { path: PathBuf, reason: String },

    #[error("invalid soname index {path}: {reason}")]
    Index { path: PathBuf, reason: String },

    #[error("cannot realise {package}: {reason}")]
    Realise { package: String, reason: String },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error::Io`] closure for `map_err`, naming the action and the path.
pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { action, path, source }
}
