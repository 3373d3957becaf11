//! Performs a mount plan inside a fresh mount namespace and makes it the root (`pivot_root`).
//!
//! Must run after `userns::enter`. Sequence (each step cites mount(2)/pivot_root(2) semantics): make every mount a
//! slave so nothing propagates back to the host; mount a scratch tmpfs over `/tmp` and pivot into it so the host
//! tree sits at `/oldroot` (this keeps the host's own `/tmp` reachable as a bind source); build the new root on a
//! tmpfs at `/newroot` from `/oldroot/<source>`; detach `/oldroot`; pivot into `/newroot` and detach the scratch
//! root. Everything lives in the namespace, so nothing is left behind when its last process exits.

use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::unistd::{chdir, pivot_root};

use crate::error::{Error, Result};
use crate::plan::{MountPlan, Op};

const SCRATCH: &str = "/tmp";
const OLD: &str = "/oldroot";
const NEW: &str = "/newroot";

fn inside(root: &str, path: &Path) -> PathBuf {
    Path::new(root).join(path.strip_prefix("/").unwrap_or(path))
}

/// Creates `path` and its missing parents. Nearly every call finds the directory there already (the parent of each
/// `/etc` link, a mount point the env tree has), so the common case is one mkdir(2) failing with EEXIST, without
/// the stat(2) `create_dir_all` adds to check what exists: a non-directory there makes the mount or link made in
/// it fail instead, naming the path.
fn mkdir_all(path: &Path) -> Result<()> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                mkdir_all(parent)?;
            }
            match std::fs::create_dir(path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    Err(Error::io("create mount point", path)(e))
                }
                _ => Ok(()),
            }
        }
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(Error::io("create mount point", path)(e))
        }
        _ => Ok(()),
    }
}

/// Creates an empty mount point of the same kind as `source` (directory or file).
fn make_mount_point(source: &Path, target: &Path) -> Result<()> {
    let is_dir = std::fs::metadata(source).map(|m| m.is_dir()).unwrap_or(true);
    if is_dir {
        return mkdir_all(target);
    }
    if let Some(parent) = target.parent() {
        mkdir_all(parent)?;
    }
    if target.symlink_metadata().is_err() {
        std::fs::File::create(target).map_err(Error::io("create mount point", target))?;
    }
    Ok(())
}

/// Remounts a bind mount read-only, keeping the flags the kernel locked on the source (nosuid, nodev, noexec, atime
/// flags): in a user namespace a remount that drops a locked flag fails with EPERM.
fn remount_read_only(target: &Path) -> Result<()> {
    let current = statvfs(target).map_err(Error::sys("statvfs", target))?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (have, set) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(have) {
            flags |= set;
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(Error::sys("remount read-only", target))
}

/// Makes the mount at `target` read-only with one mount_setattr(2) (Linux 5.12), which changes that attribute
/// alone, so the flags the kernel locked stay as they are; elsewhere it is remounted read-only with them.
fn make_read_only(target: &Path) -> Result<()> {
    if set_read_only(target, false)? {
        return Ok(());
    }
    remount_read_only(target)
}

/// Sets `MOUNT_ATTR_RDONLY` on the mount at `target` (and, with `recursive`, on every mount below it) with
/// mount_setattr(2); returns false where the kernel (or a seccomp filter) does not offer that call.
fn set_read_only(target: &Path, recursive: bool) -> Result<bool> {
    /// `struct mount_attr` of mount_setattr(2).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Plan { path: target.into(), reason: "contains a NUL byte".into() })?;
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: a NUL-terminated path and a mount_attr of the size passed, both alive for the call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            if recursive { libc::AT_RECURSIVE } else { 0 },
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if done == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // Not there (before 5.12), or refused by a filter that knows no newer calls: the remount does it.
        Some(libc::ENOSYS | libc::EPERM) => Ok(false),
        _ => Err(Error::Io { action: "make read-only (mount_setattr)", path: target.into(), source: err }),
    }
}

/// Makes the mount at `target` and every mount below it read-only (mount_setattr(2) with `AT_RECURSIVE`, Linux
/// 5.12); on older kernels each of them is remounted read-only in turn, as listed in /proc/self/mountinfo.
fn make_read_only_recursive(target: &Path) -> Result<()> {
    if set_read_only(target, true)? {
        return Ok(());
    }
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(Error::io("read", "/proc/self/mountinfo"))?;
    // proc(5): the fifth field is the mount point, with space, tab, newline and backslash as octal escapes.
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(field))))
        .filter(|point| point.starts_with(target))
        .collect();
    points.sort_by_key(|point| point.components().count());
    points.dedup();
    for point in points {
        remount_read_only(&point)?;
    }
    Ok(())
}

fn unescape_octal(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b));
        if escaped {
            let digit = |at: usize| u16::from(bytes[at] - b'0');
            out.push((digit(i + 1) * 64 + digit(i + 2) * 8 + digit(i + 3)) as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn tmpfs(target: &Path, mode: u32) -> Result<()> {
    let data = format!("mode={mode:o}");
    mount(Some("tmpfs"), target, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(data.as_str()))
        .map_err(Error::sys("mount tmpfs on", target))
}

/// Overlay option strings separate layers with `:` and options with `,`; such paths cannot be expressed.
fn overlay_path(path: &Path) -> Result<String> {
    let s =
        path.to_str().ok_or_else(|| Error::Plan { path: path.into(), reason: "not valid UTF-8".into() })?;
    if s.contains([':', ',', '\\']) {
        return Err(Error::Plan {
            path: path.into(),
            reason: "overlay layers cannot contain ':' ',' or '\\'".into(),
        });
    }
    Ok(s.to_owned())
}

/// An empty file on the scratch root, bound over files to hide them.
const EMPTY: &str = "/.fhsenv-empty";

/// Performs one step; a tmpfs to make read-only is added to `later` (mount points may still be made in it).
fn perform_op(op: &Op, later: &mut Vec<PathBuf>) -> Result<()> {
    match op {
        Op::Tmpfs { target, mode, read_only } => {
            let t = inside(NEW, target);
            mkdir_all(&t)?;
            tmpfs(&t, *mode)?;
            if *read_only {
                later.push(t);
            }
        }
        Op::Hide { target } => {
            let t = inside(NEW, target);
            match t.symlink_metadata() {
                Ok(meta) if meta.is_dir() => {
                    tmpfs(&t, 0o700)?;
                    later.push(t);
                }
                // A link leads elsewhere (its target is hidden on its own when it is a secret).
                Ok(meta) if meta.file_type().is_symlink() => {}
                Ok(_) => {
                    if Path::new(EMPTY).symlink_metadata().is_err() {
                        std::fs::write(EMPTY, b"").map_err(Error::io("create", EMPTY))?;
                    }
                    mount(Some(EMPTY), &t, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                        .map_err(Error::sys("hide", target))?;
                    make_read_only(&t)?;
                }
                Err(_) => {} // nothing to hide
            }
        }
        Op::Bind { source, target, recursive, read_only, optional } => {
            let s = inside(OLD, source);
            if *optional && s.symlink_metadata().is_err() {
                return Ok(());
            }
            let t = inside(NEW, target);
            make_mount_point(&s, &t)?;
            let mut flags = MsFlags::MS_BIND;
            if *recursive {
                flags |= MsFlags::MS_REC;
            }
            mount(Some(&s), &t, None::<&str>, flags, None::<&str>).map_err(|source_err| Error::Sys {
                action: "bind-mount",
                path: PathBuf::from(format!("{} on {}", source.display(), target.display())),
                source: source_err,
            })?;
            match (*read_only, *recursive) {
                (true, true) => make_read_only_recursive(&t)?,
                (true, false) => make_read_only(&t)?,
                _ => {}
            }
        }
        Op::Overlay { target, lower } => {
            let t = inside(NEW, target);
            mkdir_all(&t)?;
            let layers: Vec<String> =
                lower.iter().map(|l| overlay_path(&inside(OLD, l))).collect::<Result<_>>()?;
            let data = format!("lowerdir={}", layers.join(":"));
            mount(Some("overlay"), &t, Some("overlay"), MsFlags::empty(), Some(data.as_str())).map_err(
                Error::sys("mount overlayfs (needs Linux 5.11 or later without privileges) on", target),
            )?;
        }
        Op::Symlink { link, target } => {
            let l = inside(NEW, link);
            // The parent is there for nearly every link (all of `/etc`'s): made only when the link cannot be.
            match std::os::unix::fs::symlink(target, &l) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Some(parent) = l.parent() {
                        mkdir_all(parent)?;
                    }
                    std::os::unix::fs::symlink(target, &l)
                }
                done => done,
            }
            .map_err(Error::io("create link", link))?;
        }
        // Only in a plan for a new pid namespace, performed by its PID 1. An unprivileged procfs mount needs a
        // fully visible procfs in the mount namespace (the host's, still at /oldroot/proc here).
        Op::Proc { target, read_only } => {
            let t = inside(NEW, target);
            mkdir_all(&t)?;
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            if *read_only {
                flags |= MsFlags::MS_RDONLY;
            }
            mount(Some("proc"), &t, Some("proc"), flags, None::<&str>)
                .map_err(Error::sys("mount proc on", target))?;
        }
    }
    Ok(())
}

/// Builds the new root from `plan` and pivots into it; the caller's working directory becomes `plan.cwd`. With a
/// new pid namespace in the plan (`Op::Proc`) the caller must be its PID 1.
pub fn enter_root(plan: &MountPlan) -> Result<()> {
    // mount(2): MS_SLAVE|MS_REC so host mount events still arrive but ours never reach the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(Error::sys("make mounts private under", "/"))?;
    tmpfs(Path::new(SCRATCH), 0o755)?;
    mkdir_all(&inside(SCRATCH, Path::new(OLD)))?;
    pivot_root(SCRATCH, inside(SCRATCH, Path::new(OLD)).as_path())
        .map_err(Error::sys("pivot_root into", SCRATCH))?;
    chdir("/").map_err(Error::sys("chdir to", "/"))?;
    mkdir_all(Path::new(NEW))?;
    tmpfs(Path::new(NEW), 0o755)?;
    let mut later = Vec::new();
    for op in &plan.ops {
        tracing::trace!(%op, "mount step");
        perform_op(op, &mut later)?;
    }
    for target in later {
        make_read_only(&target)?;
    }
    umount2(OLD, MntFlags::MNT_DETACH).map_err(Error::sys("detach the host root at", OLD))?;
    chdir(NEW).map_err(Error::sys("chdir to", NEW))?;
    // pivot_root(2): with new_root == put_old the old root is stacked on top and can be detached right away.
    pivot_root(".", ".").map_err(Error::sys("pivot_root into", NEW))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(Error::sys("detach the scratch root", "/"))?;
    chdir("/").map_err(Error::sys("chdir to", "/"))?;
    // The new root itself is read-only: only the mounts on it are writable.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(Error::sys("remount read-only", "/"))?;
    chdir(&plan.cwd).map_err(Error::sys("enter the working directory", &plan.cwd))?;
    Ok(())
}
