//! The error of the local store: each variant names the failed action and the path involved.

use std::io;
use std::path::PathBuf;

use crate::hash::HashError;
use crate::nar::NarError;
use crate::store_path::StorePathError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("store database {path}: cannot {action}")]
    Db {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Nar(#[from] NarError),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("cannot read the derivation {path}")]
    Derivation {
        path: String,
        #[source]
        source: crate::derivation::DerivationError,
    },
    #[error(
        "refusing to use {store} as the store: Nix manages it ({db} exists), and two garbage collectors on one \
         directory delete each other's paths"
    )]
    ManagedByNix { store: PathBuf, db: PathBuf },
    #[error("path '{0}' is not valid in the store")]
    NotValid(String),
    #[error("hash mismatch for {what}: expected {expected}, got {got}")]
    HashMismatch { what: String, expected: String, got: String },
    #[error("cannot delete path '{0}' since it is still alive")]
    Alive(String),
    #[error("cannot delete path '{path}' since it is still referenced by '{referrer}'")]
    Referenced { path: String, referrer: String },
    #[error("no valid store path has a hash starting with '{0}'")]
    NoMatch(String),
    #[error("hash prefix '{prefix}' is ambiguous; it matches: {}", candidates.join(", "))]
    Ambiguous { prefix: String, candidates: Vec<String> },
    #[error("{0}")]
    Invalid(String),
    #[error("profile {profile}: {reason}")]
    Profile { profile: PathBuf, reason: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: impl Into<PathBuf> + 'a,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { action, path: path.into(), source }
}
