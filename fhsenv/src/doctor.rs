//! `env doctor`: checks what entering an env needs from this machine and says how to fix what is missing.
//!
//! Each check reads a sysctl or probes the kernel directly (the user-namespace probe forks a child that tries
//! `unshare(CLONE_NEWUSER | CLONE_NEWNS)`), and returns data; the CLI prints it.

use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;

use crate::sandbox;

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Passed (or informational only).
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it, when not ok.
    pub fix: Option<String>,
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// True if and only if a child process can create a user and mount namespace right now.
pub fn userns_works() -> Result<(), String> {
    // SAFETY: the child only calls unshare(2) and _exit(2).
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let code = match nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            // SAFETY: _exit is always sound; it avoids running the parent's destructors in the child.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(WaitStatus::Exited(_, errno)) => Err(nix::Error::from_raw(errno).desc().to_owned()),
            other => Err(format!("probe ended unexpectedly: {other:?}")),
        },
        Err(e) => Err(format!("cannot fork the probe: {e}")),
    }
}

/// Runs every check.
pub fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    let max = read_sysctl("/proc/sys/user/max_user_namespaces");
    out.push(match max.as_deref() {
        Some("0") => Check {
            name: "max_user_namespaces",
            ok: false,
            detail: "0: user namespaces are disabled".into(),
            fix: Some("sysctl -w user.max_user_namespaces=15000".into()),
        },
        Some(v) => Check { name: "max_user_namespaces", ok: true, detail: v.into(), fix: None },
        None => Check {
            name: "max_user_namespaces",
            ok: true,
            detail: "not present (old kernel)".into(),
            fix: None,
        },
    });
    if let Some(v) = read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") {
        let ok = v != "0";
        out.push(Check {
            name: "unprivileged_userns_clone",
            ok,
            detail: v,
            fix: (!ok).then(|| "sysctl -w kernel.unprivileged_userns_clone=1".into()),
        });
    }
    if let Some(v) = read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        let ok = v == "0";
        out.push(Check {
            name: "apparmor_restrict_unprivileged_userns",
            ok,
            detail: v,
            fix: (!ok).then(|| {
                "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile granting `userns,` to fhskit".into()
            }),
        });
    }
    out.push(match userns_works() {
        Ok(()) => Check { name: "user namespace probe", ok: true, detail: "unshare(user, mount) works".into(), fix: None },
        Err(e) => Check {
            name: "user namespace probe",
            ok: false,
            detail: format!("unshare(user, mount) failed: {e}"),
            fix: Some("enable unprivileged user namespaces (see the checks above); ENOSPC means the nesting depth or max_user_namespaces is exhausted".into()),
        },
    });
    let abi = sandbox::kernel_abi();
    out.push(Check {
        name: "landlock",
        ok: abi > 0,
        detail: match abi {
            0 => "not available".into(),
            1..=3 => format!("ABI {abi}: filesystem rules only, no network rules (ABI 4)"),
            _ => format!("ABI {abi}: filesystem and TCP rules"),
        },
        fix: (abi == 0).then(|| "boot with lsm=…,landlock (Linux 5.13 or later) to use `[sandbox]`".into()),
    });
    let nested = Path::new(crate::plan::HOST_ETC).exists();
    out.push(Check {
        name: "nesting",
        ok: true,
        detail: if nested {
            "inside another FHS env (the outer host /etc is propagated)".into()
        } else {
            "not nested".into()
        },
        fix: None,
    });
    for dir in ["/run/opengl-driver", "/run/opengl-driver-32"] {
        let present = Path::new(dir).exists();
        out.push(Check {
            name: if dir.ends_with("32") { "32-bit graphics drivers" } else { "graphics drivers" },
            ok: true,
            detail: if present {
                format!("{dir} present")
            } else {
                format!("{dir} absent (fine outside NixOS)")
            },
            fix: None,
        });
    }
    out
}
