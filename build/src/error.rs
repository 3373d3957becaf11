//! The errors of the builder: [`BuildError`] for what stops a realisation before or around the builds (a missing
//! derivation, an unusable setting, the store), and [`Failure`] for one derivation that did not build, with the kind
//! of failure that decides the exit status as Nix computes it.

use std::path::PathBuf;

use store::StorePath;

/// Why one derivation did not produce its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The builder exited non-zero or was killed, or an output failed a check (Nix's permanent failure).
    Builder,
    /// `timeout` or `max-silent-time` ran out.
    TimedOut,
    /// A fixed output hashed to something else than the derivation says.
    HashMismatch,
    /// `--check` produced different outputs.
    NotDeterministic,
    /// An input derivation failed.
    DependencyFailed,
    /// A fixed-output builder failed (not permanent: the network may be to blame), or anything else.
    Other,
}

/// One failed derivation: the message Nix would print for it (without `error: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub drv: StorePath,
    pub kind: FailureKind,
    pub message: String,
}

/// The exit status of a realisation that had these failures, as Nix computes it (`Worker::exitStatus`): 100 for
/// a build failure, +1 timeout, +2 hash mismatch, +4 not deterministic (104 alone), 1 for anything else.
pub fn exit_status(failures: &[Failure]) -> u8 {
    let has = |k| failures.iter().any(|f| f.kind == k);
    let timed_out = has(FailureKind::TimedOut);
    let hash_mismatch = has(FailureKind::HashMismatch);
    let mut mask = 0u8;
    if has(FailureKind::Builder) || timed_out || hash_mismatch {
        mask |= 0x04;
    }
    if timed_out {
        mask |= 0x01;
    }
    if hash_mismatch {
        mask |= 0x02;
    }
    if has(FailureKind::NotDeterministic) {
        mask |= 0x08;
    }
    if mask != 0 { mask | 0x60 } else { 1 }
}

/// What stops a realisation.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Sandbox(#[from] fhsenv::Error),
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build missing derivation '{0}'")]
    MissingDerivation(String),
    #[error("path '{0}' is required, but it is not valid and no substituter has it")]
    MissingPath(String),
    #[error("setting '{name}': {reason}")]
    Setting { name: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    /// Some derivations failed; `failures` has each, `status` the exit status Nix would use.
    #[error("{}", summary(failures))]
    Failed { failures: Vec<Failure>, status: u8 },
}

fn summary(failures: &[Failure]) -> String {
    match failures {
        [one] => one.message.clone(),
        many => {
            let drvs: Vec<String> = many
                .iter()
                .filter(|f| f.kind != FailureKind::DependencyFailed)
                .map(|f| format!("'{}'", f.drv))
                .collect();
            format!("build of {} failed", drvs.join(", "))
        }
    }
}

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io { action, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: FailureKind) -> Failure {
        let dir = store::StoreDir::new("/nix/store").unwrap();
        Failure {
            drv: dir.parse_path("/nix/store/hxcnl7nh8wbfiwfzkfnac84cgnf766kc-triv.drv").unwrap(),
            kind,
            message: String::new(),
        }
    }

    #[test]
    fn statuses_as_nix() {
        assert_eq!(exit_status(&[f(FailureKind::Builder)]), 100);
        assert_eq!(exit_status(&[f(FailureKind::TimedOut)]), 101);
        assert_eq!(exit_status(&[f(FailureKind::HashMismatch)]), 102);
        assert_eq!(exit_status(&[f(FailureKind::NotDeterministic)]), 104);
        assert_eq!(exit_status(&[f(FailureKind::Builder), f(FailureKind::TimedOut)]), 101);
        assert_eq!(exit_status(&[f(FailureKind::DependencyFailed)]), 1);
        assert_eq!(exit_status(&[f(FailureKind::Other)]), 1);
    }
}
