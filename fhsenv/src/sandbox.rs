//! The opt-in sandbox. Its mount half is in the plan (`plan::PlanOptions::writable`): every host path read-only,
//! so no write, chmod or chown can reach the host (Landlock has no rule for attribute changes), the `writable`
//! directories bound writable over that, and secrets hidden ([`hidden_paths`]). Its process half is applied by the
//! program's process as the last steps before `execve` (after the mounts and `pivot_root`: a landlocked process can
//! no longer change mount topology): [`drop_capabilities`], so that even root cannot undo a mount or override file
//! permissions, then the Landlock profile ([`apply`]).
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
use crate::plan::HostInfo;
use crate::spec::{Network, SECRETS, SandboxSpec};

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
    let open = |dirs: &[PathBuf]| -> Result<Vec<PathFd>> {
        dirs.iter()
            .map(|d| PathFd::new(d).map_err(|e| Error::Sandbox(format!("cannot open {}: {e}", d.display()))))
            .collect()
    };
    let (r, w) = (open(readable)?, open(writable)?);
    ruleset_fds(&r, &w)
}

/// [`ruleset`] for directories already open (`O_PATH` descriptors will do): those of a detached mount, which no
/// path reaches.
pub fn ruleset_fds<F: std::os::fd::AsFd>(
    readable: &[F],
    writable: &[F],
) -> Result<Option<std::os::fd::OwnedFd>> {
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
        for fd in dirs {
            created = created.add_rule(PathBeneath::new(fd.as_fd(), access)).map_err(ll)?;
        }
    }
    Ok(created.into())
}

/// The host paths a sandbox hides: its `hide` list and the [`SECRETS`] not named in its `read` list, expanded
/// (`~`, `.`, a `*` in the last component of a secret matched against that directory's names).
pub fn hidden_paths(spec: &SandboxSpec, host: &HostInfo) -> Vec<PathBuf> {
    let read: Vec<PathBuf> = spec.read.iter().map(|r| host.expand(r)).collect();
    let mut out: Vec<PathBuf> = spec.hide.iter().map(|h| host.expand(h)).collect();
    for secret in SECRETS {
        let secret = Path::new(secret);
        let name = secret.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let matches: Vec<PathBuf> = match name.split_once('*') {
            None => vec![secret.to_owned()],
            Some((prefix, suffix)) => {
                let dir = secret.parent().unwrap_or(Path::new("/"));
                std::fs::read_dir(dir)
                    .map(|entries| {
                        entries
                            .flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .filter(|n| n.len() >= prefix.len() + suffix.len())
                            .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
                            .map(|n| dir.join(n))
                            .collect()
                    })
                    .unwrap_or_default()
            }
        };
        for path in matches {
            if !read.iter().any(|r| path.starts_with(r)) && !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// Drops every capability of the calling process for good: the bounding set, the ambient and inheritable sets, and
/// `no_new_privs`, so that the program (root included) and whatever it executes run without capabilities: a
/// read-only mount cannot be remounted, file permissions cannot be overridden, setuid programs gain nothing
/// (capabilities(7): with an empty bounding and inheritable set an execve by uid 0 grants none).
pub fn drop_capabilities() -> Result<()> {
    let fail = |what: &str| Error::Sandbox(format!("cannot {what}: {}", std::io::Error::last_os_error()));
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
        {
            return Err(fail("drop a capability from the bounding set"));
        }
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
    {
        return Err(fail("clear the ambient capabilities"));
    }
    /// capget(2)/capset(2) header and data (`_LINUX_CAPABILITY_VERSION_3`: two 32-bit halves).
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header { version: 0x2008_0522, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: a valid header and the two data structs version 3 expects, alive for the call.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) } != 0 {
        return Err(fail("clear the capability sets"));
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(fail("set no_new_privs"));
    }
    Ok(())
}

fn describe(dirs: &[&Path]) -> String {
    if dirs.is_empty() {
        return "nothing".into();
    }
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}
