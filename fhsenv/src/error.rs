//! The error type of the fhsenv crate: every variant names the failed action and the path it concerns.

use std::path::{Path, PathBuf};

/// Result alias for fhsenv.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while loading, building or entering an env.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A system call of the launcher failed.
    #[error("failed to {action} {}", path.display())]
    Sys {
        /// What was being done.
        action: &'static str,
        /// The path concerned (or a description of the object).
        path: PathBuf,
        /// The kernel's reason.
        #[source]
        source: nix::Error,
    },
    /// The env declaration is malformed.
    #[error("invalid env spec {}: {message}", at(path, *line))]
    Spec {
        /// The `env.toml`.
        path: PathBuf,
        /// 1-based line, 0 when the problem is not on one line.
        line: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A package directory cannot be used.
    #[error("package {}: {reason}", path.display())]
    Package {
        /// The package directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A built env directory is missing or not an env.
    #[error("{} is not a built env: {reason}", path.display())]
    NotAnEnv {
        /// The directory given.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The mount plan cannot be made (a path the env needs is hidden or unusable).
    #[error("cannot plan mounts for {}: {reason}", path.display())]
    Plan {
        /// The path concerned.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A step of an isolated child's set-up failed (`isolate`).
    #[error("failed to {action}")]
    Spawn {
        /// The step, naming its paths.
        action: String,
        /// The kernel's reason.
        #[source]
        source: nix::Error,
    },
    /// The Landlock sandbox could not be applied as strictly as requested.
    #[error("landlock sandbox: {0}")]
    Sandbox(String),
}

fn at(path: &Path, line: usize) -> String {
    if line == 0 { path.display().to_string() } else { format!("{} line {line}", path.display()) }
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    pub(crate) fn sys(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(nix::Error) -> Error {
        let path = path.into();
        move |source| Error::Sys { action, path, source }
    }
}
