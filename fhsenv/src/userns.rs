//! User namespace entry: `unshare` with the requested namespaces, then the uid/gid maps.
//!
//! An unprivileged caller maps only itself (user_namespaces(7): one line, and `setgroups` must be denied before an
//! unprivileged gid_map write); with `fake_root` it appears as uid/gid 0. Real root needs no user namespace: it
//! already may mount, and staying in the initial namespace keeps every file's ownership exact (a process can map
//! more than its own id only from the parent namespace, never for itself after unshare). Root without
//! CAP_SYS_ADMIN (a container) falls back to a user namespace mapping root alone. Must be called while the process
//! is single-threaded (unshare(2)).

use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid};

use crate::error::{Error, Result};
use crate::spec::UnshareSpec;

/// Namespaces to create besides user and mount.
pub fn clone_flags(unshare: &UnshareSpec) -> CloneFlags {
    let mut flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
    for (wanted, flag) in [
        (unshare.pid, CloneFlags::CLONE_NEWPID),
        (unshare.net, CloneFlags::CLONE_NEWNET),
        (unshare.ipc, CloneFlags::CLONE_NEWIPC),
        (unshare.uts, CloneFlags::CLONE_NEWUTS),
        (unshare.cgroup, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if wanted {
            flags |= flag;
        }
    }
    flags
}

/// The uid and gid map lines written for a caller with `uid`/`gid`: its own ids, or 0 inside with `fake_root`.
pub fn id_maps(uid: Uid, gid: Gid, fake_root: bool) -> (String, String) {
    let (inner_uid, inner_gid) = if fake_root { (0, 0) } else { (uid.as_raw(), gid.as_raw()) };
    (format!("{inner_uid} {uid} 1\n"), format!("{inner_gid} {gid} 1\n"))
}

fn write_proc(file: &str, text: &str) -> Result<()> {
    std::fs::write(file, text).map_err(Error::io("write", file))
}

/// Whether the calling process has a single thread: unshare(2) refuses a user namespace (EINVAL) otherwise.
pub fn single_threaded() -> bool {
    // proc(5): "Threads:" in /proc/self/status; the task directory lists one entry per thread.
    std::fs::read_dir("/proc/self/task").map(|d| d.count() == 1).unwrap_or(true)
}

/// Unshares the namespaces and writes the id maps for the calling process.
pub fn enter(unshare_spec: &UnshareSpec, fake_root: bool) -> Result<()> {
    if !single_threaded() {
        return Err(Error::Sys {
            action: "create namespaces",
            path: "for this process (it has several threads; enter from a single-threaded process)".into(),
            source: nix::Error::EINVAL,
        });
    }
    let (uid, gid) = (Uid::current(), Gid::current());
    let flags = clone_flags(unshare_spec);
    if uid.is_root() {
        match unshare(flags - CloneFlags::CLONE_NEWUSER) {
            Ok(()) => return finish(unshare_spec),
            Err(nix::Error::EPERM) => {}
            Err(source) => {
                return Err(Error::Sys {
                    action: "create namespaces",
                    path: "for this process".into(),
                    source,
                });
            }
        }
    }
    unshare(flags).map_err(|source| {
        let hint = match source {
            nix::Error::ENOSPC => " (nesting depth or max_user_namespaces exceeded; see `fhskit env doctor`)",
            nix::Error::EPERM | nix::Error::EACCES => {
                " (unprivileged user namespaces are disabled or restricted; see `fhskit env doctor`)"
            }
            _ => "",
        };
        Error::Sys { action: "create namespaces", path: format!("for this process{hint}").into(), source }
    })?;
    let (uid_map, gid_map) = id_maps(uid, gid, fake_root);
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &uid_map)?;
    write_proc("/proc/self/gid_map", &gid_map)?;
    finish(unshare_spec)
}

fn finish(unshare_spec: &UnshareSpec) -> Result<()> {
    if unshare_spec.net {
        loopback_up()?;
    }
    Ok(())
}

/// Brings up `lo` in a new network namespace so that 127.0.0.1 works (netdevice(7) SIOCSIFFLAGS).
fn loopback_up() -> Result<()> {
    // SAFETY: plain socket(2) call; the result is checked and the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::Io {
            action: "open a socket to configure",
            path: "lo".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: fd is a valid socket and req a valid ifreq for these requests; ifru_flags is the union member the
    // kernel reads and writes for SIOC[GS]IFFLAGS.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            -1
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req)
        }
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: fd was opened above and is not used afterwards.
    unsafe { libc::close(fd) };
    if result < 0 {
        return Err(Error::Io { action: "bring up", path: "lo".into(), source: err });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps() {
        assert_eq!(
            id_maps(Uid::from_raw(1000), Gid::from_raw(100), false),
            ("1000 1000 1\n".into(), "100 100 1\n".into())
        );
        assert_eq!(
            id_maps(Uid::from_raw(1000), Gid::from_raw(100), true),
            ("0 1000 1\n".into(), "0 100 1\n".into())
        );
    }

    #[test]
    fn flags() {
        let f = clone_flags(&UnshareSpec { pid: true, ..UnshareSpec::default() });
        assert!(f.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS));
        assert!(!f.contains(CloneFlags::CLONE_NEWNET));
    }
}
