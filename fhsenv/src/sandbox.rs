//! The opt-in Landlock profile, applied by the program's process as the last step before `execve` (after the mounts
//! and `pivot_root`: a landlocked process can no longer change mount topology).
//!
//! Rights are pinned to ABI 5 (the newest this code is tested with, landlock(7)): the whole tree is readable and
//! executable, the listed directories (plus `/dev`) fully writable; with a network policy TCP bind/connect are
//! denied except the listed ports (ABI 4). Best effort by default: on older kernels what cannot be enforced is
//! dropped and the one-line report says so; `strict = true` turns that into an error. Directories to hide are
//! handled by the mount plan (an empty tmpfs), since Landlock cannot deny a subtree of an allowed tree.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};

use crate::error::{Error, Result};
use crate::spec::{Network, SandboxSpec};

const TESTED_ABI: ABI = ABI::V5;

/// The kernel's Landlock ABI version (0 when Landlock is unavailable), from landlock_create_ruleset(2).
pub fn kernel_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the syscall only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

fn ll(err: impl std::fmt::Display) -> Error {
    Error::Sandbox(err.to_string())
}

/// Restricts the calling process; returns the one-line report ("sandbox: fully enforced …").
pub fn apply(spec: &SandboxSpec, writable: &[PathBuf]) -> Result<String> {
    let level = if spec.strict { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(TESTED_ABI))
        .map_err(ll)?;
    let network = spec.network != Network::Host;
    if network {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp).map_err(ll)?;
    }
    let mut created = ruleset.create().map_err(ll)?;
    let root = PathFd::new("/").map_err(ll)?;
    created = created.add_rule(PathBeneath::new(root, AccessFs::from_read(TESTED_ABI))).map_err(ll)?;
    let mut granted = Vec::new();
    for dir in writable {
        // Best effort: a listed directory that does not exist inside is skipped, and reported.
        match PathFd::new(dir) {
            Ok(fd) => {
                created =
                    created.add_rule(PathBeneath::new(fd, AccessFs::from_all(TESTED_ABI))).map_err(ll)?;
                granted.push(dir.as_path());
            }
            Err(e) if spec.strict => {
                return Err(Error::Sandbox(format!("cannot open writable directory {}: {e}", dir.display())));
            }
            Err(_) => {}
        }
    }
    if spec.network == Network::Ports {
        for port in &spec.tcp_connect {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp)).map_err(ll)?;
        }
        for port in &spec.tcp_bind {
            created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp)).map_err(ll)?;
        }
    }
    let status = created.restrict_self().map_err(ll)?;
    let abi = kernel_abi();
    let state = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced",
    };
    let mut parts = vec![format!("read-only except {}", describe(&granted))];
    parts.push(match spec.network {
        Network::Host => "network: unrestricted".to_owned(),
        Network::None if abi >= 4 => "network: no TCP".to_owned(),
        Network::Ports if abi >= 4 => {
            format!("network: TCP connect {:?} bind {:?}", spec.tcp_connect, spec.tcp_bind)
        }
        _ => "network: not restricted (needs landlock ABI 4)".to_owned(),
    });
    Ok(format!("sandbox: {state} (kernel landlock ABI {abi}): {}", parts.join("; ")))
}

/// A Landlock ruleset for a child started by `isolate` (which applies it just before exec): read and execute
/// beneath each of `readable`, everything beneath each of `writable`, and (ABI 6) no connecting to abstract unix
/// sockets or signalling processes outside the child's domain. Paths are opened here, so they name host inodes; a
/// rule on a directory that a mount later covers still applies inside. Best effort: `None` when the kernel has no
/// Landlock, and newer rights the kernel lacks are dropped.
pub fn ruleset(readable: &[PathBuf], writable: &[PathBuf]) -> Result<Option<std::os::fd::OwnedFd>> {
    if kernel_abi() == 0 {
        return Ok(None);
    }
    let mut created = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TESTED_ABI))
        .map_err(ll)?
        .scope(landlock::Scope::AbstractUnixSocket | landlock::Scope::Signal)
        .map_err(ll)?
        .create()
        .map_err(ll)?;
    for (dirs, access) in
        [(readable, AccessFs::from_read(TESTED_ABI)), (writable, AccessFs::from_all(TESTED_ABI))]
    {
        for dir in dirs {
            let fd = PathFd::new(dir)
                .map_err(|e| Error::Sandbox(format!("cannot open {}: {e}", dir.display())))?;
            created = created.add_rule(PathBeneath::new(fd, access)).map_err(ll)?;
        }
    }
    Ok(created.into())
}

fn describe(dirs: &[&Path]) -> String {
    if dirs.is_empty() {
        return "nothing".into();
    }
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}
