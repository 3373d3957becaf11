//! One process started in fresh namespaces over a prepared root: what the builder (`build`) runs each derivation's
//! builder with, and what any caller that may have other threads can use instead of `userns` + `mount` (which
//! change the calling process and need it single-threaded).
//!
//! The caller describes everything as data ([`Isolate`]: namespaces, id maps, bind mounts, proc, tmpfs, the root to
//! pivot into, ids, Landlock ruleset, file descriptors, program). [`Isolate::spawn`] turns it into a list of steps
//! with every path already a C string, then clone(2)s the child, which performs the steps with raw system calls
//! only and execs: the caller may have other threads, so between clone and execve the child must neither allocate
//! nor take a lock (signal-safety(7)). The parent writes the id maps (user_namespaces(7): from the parent
//! namespace, which may map ids other than its own when it is root) and then lets the child go on through a pipe.
//! A failing step is reported through a close-on-exec pipe as its index and errno, and named in the error.
//!
//! The child is PID 1 of its pid namespace when one is asked for: when it exits, the kernel kills everything left
//! inside, so a builder cannot leave processes behind.
//!
//! Tearing a mount namespace down costs an RCU grace period and a network namespace its cleanup work; the exiting
//! child pays that before its parent sees it exit (several milliseconds each on a busy machine, more than the
//! whole set-up). With [`Isolate::keep_namespaces`] the parent holds the new mount and network namespaces open, so
//! the teardown happens when the caller drops [`Child::take_namespaces`]'s handle, off the path that waits.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::sys::statvfs::{FsFlags, statvfs};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// The namespaces the child gets (mount, pid, … without `user` need root).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
}

/// The single-id maps of a new user namespace: `inner` ids inside are `outer` ids outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub inner_uid: u32,
    pub outer_uid: u32,
    pub inner_gid: u32,
    pub outer_gid: u32,
    /// Leave setgroups(2) allowed inside (only root may write a gid map then), so the child can drop the
    /// supplementary groups it inherited; otherwise `setgroups` is denied, as an unprivileged writer must.
    pub allow_setgroups: bool,
}

/// One mount made in the child before it pivots into the root. Targets are host paths (inside the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A bind mount of `source` on `target` (which must exist and be of the same kind).
    Bind { source: PathBuf, target: PathBuf, read_only: bool, recursive: bool },
    /// A fresh procfs (needs a pid namespace when unprivileged).
    Proc { target: PathBuf },
    /// A fresh tmpfs with mount options such as `mode=1777,size=50%`.
    Tmpfs { target: PathBuf, options: String },
    /// A private devpts instance (`newinstance`); skipped where the kernel refuses one.
    Devpts { target: PathBuf },
    /// Attaches the detached mount `mount` (an fsmount(2) or open_tree(2) descriptor of the parent, which must
    /// stay open until [`Isolate::spawn`] returns) on `target` with move_mount(2). Attached on [`Isolate::root`] as
    /// the first mount, it is the root itself (which is then not bound onto itself): a tree the parent made in a
    /// tmpfs of its own, without a path on the host.
    Attach { mount: RawFd, target: PathBuf },
}

/// What to start and how (see the module documentation).
#[derive(Debug)]
pub struct Isolate {
    pub namespaces: Namespaces,
    /// Written by the parent when `namespaces.user` is set; required then.
    pub id_map: Option<IdMap>,
    /// Set in a new uts namespace (with the domain name `(none)`).
    pub hostname: Option<String>,
    /// Bring up `lo` (in a new network namespace).
    pub loopback: bool,
    pub mounts: Vec<Mount>,
    /// The host directory that becomes `/` (it is bound onto itself, then `pivot_root`ed into); `None` keeps `/`.
    pub root: Option<PathBuf>,
    /// Working directory, as seen from inside.
    pub cwd: PathBuf,
    pub program: PathBuf,
    /// `argv`, including `argv[0]`.
    pub args: Vec<OsString>,
    /// The whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// Descriptors for standard input, output and error in the parent.
    pub stdio: [RawFd; 3],
    pub umask: u32,
    /// Switch to these (uid, gid) after the mounts, as seen inside: a process keeps its host ids when it enters a
    /// user namespace, so root must switch to the mapped build user (or, without a user namespace, to the build
    /// user itself).
    pub switch_ids: Option<(u32, u32)>,
    /// Drop the supplementary groups (before `switch_ids`); needs setgroups allowed.
    pub drop_groups: bool,
    /// A new session (setsid), so the child and its descendants are one process group.
    pub new_session: bool,
    /// Core dumps off (RLIMIT_CORE = 0).
    pub no_core_dumps: bool,
    /// PR_SET_NO_NEW_PRIVS: setuid programs gain nothing inside.
    pub no_new_privs: bool,
    /// A Landlock ruleset to restrict the child with (see [`crate::sandbox::ruleset`]).
    pub landlock: Option<OwnedFd>,
    /// SIGKILL the child when the thread that spawned it dies.
    pub die_with_parent: bool,
    /// Hold the child's new mount and network namespaces open (see the module documentation and
    /// [`Child::take_namespaces`]).
    pub keep_namespaces: bool,
    /// An empty directory in `root` (named as seen inside, e.g. `/.old-root`) where pivot_root(2) puts the old
    /// root, which is then covered with an empty read-only tmpfs instead of detached. Detaching it costs an RCU
    /// grace period in the child (milliseconds, tens of them on a busy machine); covered, it stays out of reach
    /// (an unprivileged child cannot unmount the cover, and in a user namespace of its own the copied mounts are
    /// locked together) until the mount namespace ends. `None`: detach it (nothing extra shows at the root).
    pub cover_old_root: Option<PathBuf>,
}

/// A running isolated child.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    /// A pidfd (pidfd_open(2), Linux 5.3): readable once the child has exited.
    pidfd: Option<OwnedFd>,
    namespaces: HeldNamespaces,
}

/// Namespaces of a child held open by its parent ([`Isolate::keep_namespaces`]); dropping the last holder tears
/// them down, with their mounts, in the dropping thread.
#[derive(Debug, Default)]
pub struct HeldNamespaces {
    fds: Vec<OwnedFd>,
}

impl HeldNamespaces {
    /// Opens the mount and network namespaces of `pid` among the new ones of `ns`.
    fn open(pid: Pid, ns: &Namespaces) -> Result<HeldNamespaces> {
        let mut fds = Vec::new();
        for (new, name) in [(ns.mount, "mnt"), (ns.net, "net")] {
            if new {
                let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
                let f = std::fs::File::open(&path).map_err(Error::io("open", path))?;
                fds.push(OwnedFd::from(f));
            }
        }
        Ok(HeldNamespaces { fds })
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}

/// One step of the child, with everything it needs prepared.
enum Step {
    WaitForParent,
    Loopback,
    Hostname(CString),
    Domainname(CString),
    Mount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: libc::c_ulong,
        data: CString,
        optional: bool,
    },
    Attach {
        mount: RawFd,
        target: CString,
    },
    Chdir(CString),
    PivotHere,
    /// pivot_root(".", put_old), then the cover mount on the old root.
    PivotCovered {
        put_old: CString,
        cover: Box<Step>,
    },
    Umask(libc::mode_t),
    NoCoreDumps,
    NewSession,
    Stdio([RawFd; 3]),
    CloseOthers,
    DefaultSignals,
    DropGroups,
    SwitchIds(libc::uid_t, libc::gid_t),
    NoNewPrivs,
    Landlock(RawFd),
    DieWithParent,
}

/// move_mount(2): the source is the descriptor itself (linux/mount.h).
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn cstr(s: &OsStr, what: &Path) -> Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| Error::Plan { path: what.into(), reason: "contains a NUL byte".into() })
}

fn cpath(p: &Path) -> Result<CString> {
    cstr(p.as_os_str(), p)
}

/// The flags a read-only remount of a bind of `source` must keep: in a user namespace the kernel locks nosuid,
/// nodev, noexec and the atime flags of the original mount, and a remount dropping one fails with EPERM.
fn locked_flags(source: &Path) -> libc::c_ulong {
    let Ok(st) = statvfs(source) else { return 0 };
    let mut flags = 0;
    for (have, set) in [
        (FsFlags::ST_NOSUID, libc::MS_NOSUID),
        (FsFlags::ST_NODEV, libc::MS_NODEV),
        (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
        (FsFlags::ST_NOATIME, libc::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.flags().contains(have) {
            flags |= set;
        }
    }
    flags
}

impl Isolate {
    /// The steps of the child, each with a description for errors.
    fn steps(&self) -> Result<(Vec<Step>, Vec<String>)> {
        let mut steps = Vec::new();
        let mut what = Vec::new();
        let mut push = |s: Step, w: String| {
            steps.push(s);
            what.push(w);
        };
        let empty = CString::default();
        if self.namespaces.user || self.keep_namespaces {
            push(Step::WaitForParent, "wait for the parent to set up the namespaces".into());
        }
        if self.loopback {
            push(Step::Loopback, "bring up the loopback interface".into());
        }
        if let Some(h) = &self.hostname {
            push(Step::Hostname(cstr(OsStr::new(h), Path::new(h))?), format!("set the host name to {h}"));
            push(Step::Domainname(c"(none)".into()), "set the domain name".into());
        }
        if self.namespaces.mount {
            push(
                Step::Mount {
                    source: c"none".into(),
                    target: c"/".into(),
                    fstype: empty.clone(),
                    flags: libc::MS_PRIVATE | libc::MS_REC,
                    data: empty.clone(),
                    optional: false,
                },
                "make every mount private".into(),
            );
        }
        let root_attached = matches!((&self.root, self.mounts.first()), (Some(r), Some(Mount::Attach { target, .. })) if r == target);
        if let Some(root) = self.root.as_ref().filter(|_| !root_attached) {
            let r = cpath(root)?;
            push(
                Step::Mount {
                    source: r.clone(),
                    target: r,
                    fstype: empty.clone(),
                    flags: libc::MS_BIND | libc::MS_REC,
                    data: empty.clone(),
                    optional: false,
                },
                format!("bind-mount the root {} onto itself", root.display()),
            );
        }
        for m in &self.mounts {
            match m {
                Mount::Bind { source, target, read_only, recursive } => {
                    let mut flags = libc::MS_BIND;
                    if *recursive {
                        flags |= libc::MS_REC;
                    }
                    push(
                        Step::Mount {
                            source: cpath(source)?,
                            target: cpath(target)?,
                            fstype: empty.clone(),
                            flags,
                            data: empty.clone(),
                            optional: false,
                        },
                        format!("bind-mount {} on {}", source.display(), target.display()),
                    );
                    if *read_only {
                        push(
                            Step::Mount {
                                source: c"none".into(),
                                target: cpath(target)?,
                                fstype: empty.clone(),
                                flags: libc::MS_BIND
                                    | libc::MS_REMOUNT
                                    | libc::MS_RDONLY
                                    | locked_flags(source),
                                data: empty.clone(),
                                optional: false,
                            },
                            format!("remount {} read-only", target.display()),
                        );
                    }
                }
                Mount::Proc { target } => push(
                    Step::Mount {
                        source: c"proc".into(),
                        target: cpath(target)?,
                        fstype: c"proc".into(),
                        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        data: empty.clone(),
                        optional: false,
                    },
                    format!("mount proc on {}", target.display()),
                ),
                Mount::Tmpfs { target, options } => push(
                    Step::Mount {
                        source: c"tmpfs".into(),
                        target: cpath(target)?,
                        fstype: c"tmpfs".into(),
                        flags: libc::MS_NOSUID | libc::MS_NODEV,
                        data: cstr(OsStr::new(options), target)?,
                        optional: false,
                    },
                    format!("mount tmpfs on {}", target.display()),
                ),
                Mount::Attach { mount, target } => push(
                    Step::Attach { mount: *mount, target: cpath(target)? },
                    format!("attach a mount on {}", target.display()),
                ),
                Mount::Devpts { target } => push(
                    Step::Mount {
                        source: c"devpts".into(),
                        target: cpath(target)?,
                        fstype: c"devpts".into(),
                        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                        data: c"newinstance,ptmxmode=0666,mode=0620".into(),
                        optional: true,
                    },
                    format!("mount devpts on {}", target.display()),
                ),
            }
        }
        if let Some(root) = &self.root {
            push(Step::Chdir(cpath(root)?), format!("enter {}", root.display()));
            match &self.cover_old_root {
                None => push(Step::PivotHere, format!("pivot_root into {}", root.display())),
                Some(old) => {
                    let relative = old.strip_prefix("/").unwrap_or(old);
                    let cover = Step::Mount {
                        source: c"none".into(),
                        target: cpath(old)?,
                        fstype: c"tmpfs".into(),
                        flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        data: c"mode=000,size=4k,nr_inodes=1".into(),
                        optional: false,
                    };
                    push(
                        Step::PivotCovered { put_old: cpath(relative)?, cover: Box::new(cover) },
                        format!(
                            "pivot_root into {} and cover the old root at {}",
                            root.display(),
                            old.display()
                        ),
                    );
                }
            }
        }
        push(Step::Chdir(cpath(&self.cwd)?), format!("enter the working directory {}", self.cwd.display()));
        push(Step::Umask(self.umask as libc::mode_t), "set the umask".into());
        if self.no_core_dumps {
            push(Step::NoCoreDumps, "turn core dumps off".into());
        }
        if self.new_session {
            push(Step::NewSession, "start a new session".into());
        }
        push(Step::Stdio(self.stdio), "set up standard input and output".into());
        push(Step::CloseOthers, "close inherited file descriptors".into());
        push(Step::DefaultSignals, "reset signal handling".into());
        if self.drop_groups {
            push(Step::DropGroups, "drop the supplementary groups".into());
        }
        if let Some((uid, gid)) = self.switch_ids {
            push(Step::SwitchIds(uid, gid), format!("switch to uid {uid} and gid {gid}"));
        }
        if self.no_new_privs || self.landlock.is_some() {
            push(Step::NoNewPrivs, "set no_new_privs".into());
        }
        if let Some(fd) = &self.landlock {
            push(Step::Landlock(fd.as_raw_fd()), "apply the landlock ruleset".into());
        }
        if self.die_with_parent {
            push(Step::DieWithParent, "set the parent-death signal".into());
        }
        Ok((steps, what))
    }

    /// Starts the child. Returns once it has exec'd (or failed to, with the step that failed).
    pub fn spawn(&self) -> Result<Child> {
        if self.namespaces.user && self.id_map.is_none() {
            return Err(Error::Plan {
                path: self.program.clone(),
                reason: "a user namespace needs id maps".into(),
            });
        }
        let (steps, what) = self.steps()?;
        let program = cpath(&self.program)?;
        let args: Vec<CString> = self.args.iter().map(|a| cstr(a, &self.program)).collect::<Result<_>>()?;
        let env: Vec<CString> = self
            .env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).map_err(|_| Error::Plan {
                    path: PathBuf::from(k),
                    reason: "environment variable contains a NUL byte".into(),
                })
            })
            .collect::<Result<_>>()?;
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());

        let (err_read, err_write) = pipe()?;
        let (sync_read, sync_write) = pipe()?;

        let mut flags = libc::SIGCHLD as libc::c_long;
        for (on, flag) in [
            (self.namespaces.user, libc::CLONE_NEWUSER),
            (self.namespaces.mount, libc::CLONE_NEWNS),
            (self.namespaces.pid, libc::CLONE_NEWPID),
            (self.namespaces.net, libc::CLONE_NEWNET),
            (self.namespaces.ipc, libc::CLONE_NEWIPC),
            (self.namespaces.uts, libc::CLONE_NEWUTS),
        ] {
            if on {
                flags |= flag as libc::c_long;
            }
        }
        let t_clone = std::time::Instant::now();
        // SAFETY: clone(2) without CLONE_VM and without a new stack behaves like fork(2): the child gets a copy of
        // the address space and continues here with a return value of 0. It then only runs `child`, which makes
        // raw system calls on data prepared above and never returns.
        let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
        if pid == 0 {
            // SAFETY: we are the child; see `child`.
            unsafe {
                child(&steps, sync_read.as_raw_fd(), err_write.as_raw_fd(), &program, &argv, &envp);
            }
        }
        if pid < 0 {
            return Err(Error::Sys {
                action: "create the namespaces of",
                path: self.program.clone(),
                source: nix::Error::last(),
            });
        }
        let pid = Pid::from_raw(pid as i32);
        drop(err_write);
        drop(sync_read);
        // SAFETY: pidfd_open(2) on our own child, which cannot be reaped before we wait for it; a returned
        // descriptor is owned by nothing else.
        let pidfd = unsafe {
            let fd = libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0u32);
            (fd >= 0).then(|| <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as RawFd))
        };
        let mut child = Child { pid, pidfd, namespaces: HeldNamespaces::default() };
        let t_maps = std::time::Instant::now();
        let prepared = (|| {
            if let (true, Some(map)) = (self.namespaces.user, self.id_map) {
                write_id_maps(pid, &map)?;
            }
            if self.keep_namespaces {
                child.namespaces = HeldNamespaces::open(pid, &self.namespaces)?;
            }
            Ok(())
        })();
        if let Err(e) = prepared {
            child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let t_go = std::time::Instant::now();
        // The child goes on (or, without a user namespace and without held namespaces, is not waiting).
        let _ = nix::unistd::write(&sync_write, b"1");
        drop(sync_write);
        let mut report = [0u8; 8];
        let n = read_full(err_read.as_raw_fd(), &mut report);
        if n == 8 {
            let step = u32::from_ne_bytes(report[..4].try_into().expect("4 bytes")) as usize;
            let errno = i32::from_ne_bytes(report[4..].try_into().expect("4 bytes"));
            let _ = child.wait();
            let action =
                what.get(step).cloned().unwrap_or_else(|| format!("execute {}", self.program.display()));
            return Err(Error::Spawn { action, source: nix::Error::from_raw(errno) });
        }
        tracing::debug!(
            program = %self.program.display(),
            clone = ?t_maps.duration_since(t_clone),
            id_maps = ?t_go.duration_since(t_maps),
            steps_and_exec = ?t_go.elapsed(),
            "isolated child started"
        );
        Ok(child)
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("create a pipe for", "the child"))
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: reading into the unfilled part of a live buffer.
        let r = unsafe { libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r > 0 {
            n += r as usize;
        } else if r == 0 || nix::Error::last() != nix::Error::EINTR {
            break;
        }
    }
    n
}

fn write_id_maps(pid: Pid, map: &IdMap) -> Result<()> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let write = |file: &str, text: String| {
        let path = proc.join(file);
        std::fs::write(&path, text).map_err(Error::io("write", path))
    };
    // user_namespaces(7): an unprivileged process must deny setgroups before writing gid_map.
    if !map.allow_setgroups {
        write("setgroups", "deny".into())?;
    }
    write("uid_map", format!("{} {} 1\n", map.inner_uid, map.outer_uid))?;
    write("gid_map", format!("{} {} 1\n", map.inner_gid, map.outer_gid))
}

impl Child {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// A descriptor that polls readable once the child has exited (where the kernel has pidfds).
    pub fn exit_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pidfd.as_ref().map(std::os::fd::AsFd::as_fd)
    }

    /// The namespaces held for the child ([`Isolate::keep_namespaces`]), for the caller to drop once it no longer
    /// waits on anything (their teardown takes place in the dropping thread).
    pub fn take_namespaces(&mut self) -> HeldNamespaces {
        std::mem::take(&mut self.namespaces)
    }

    /// Sends SIGKILL to the child (and with it its whole pid namespace).
    pub fn kill(&self) {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
    }

    /// Sends SIGKILL to the child's process group (its session, after `new_session`).
    pub fn kill_group(&self) {
        let _ = nix::sys::signal::killpg(self.pid, Signal::SIGKILL);
    }

    /// Waits for the child to end.
    pub fn wait(&self) -> Result<WaitStatus> {
        loop {
            match waitpid(self.pid, None) {
                Err(nix::Error::EINTR) => continue,
                r => return r.map_err(Error::sys("wait for", PathBuf::from(self.pid.to_string()))),
            }
        }
    }

    /// The child's status if it has ended, without waiting.
    pub fn try_wait(&self) -> Result<Option<WaitStatus>> {
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(Error::sys("wait for", PathBuf::from(self.pid.to_string()))(e)),
        }
    }
}

/// Reports the failed step and its errno to the parent, and exits.
///
/// # Safety
/// Only async-signal-safe calls.
unsafe fn fail(err_fd: RawFd, step: usize) -> ! {
    // SAFETY: errno is thread-local and readable at any time; write(2) and _exit(2) are async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
        msg[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(err_fd, msg.as_ptr().cast(), 8);
        libc::_exit(127)
    }
}

/// The child between clone and execve.
///
/// # Safety
/// Must only be called in the child of a fork-like clone. Everything it touches was prepared before the clone; it
/// makes only async-signal-safe system calls (signal-safety(7)) and never returns. glibc does not know about the
/// clone, so wrappers that act on all threads (set*id) must not be used: they are made as raw system calls.
unsafe fn child(
    steps: &[Step],
    sync_fd: RawFd,
    err_fd: RawFd,
    program: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    // SAFETY: each call below is a raw system call on pointers to memory prepared before the clone, which stays
    // valid in this copy of the address space; on failure `fail` reports and exits.
    unsafe {
        for (i, step) in steps.iter().enumerate() {
            let ok = match step {
                Step::WaitForParent => {
                    let mut b = [0u8; 1];
                    let r = loop {
                        let r = libc::read(sync_fd, b.as_mut_ptr().cast(), 1);
                        if r >= 0 || *libc::__errno_location() != libc::EINTR {
                            break r;
                        }
                    };
                    if r != 1 {
                        *libc::__errno_location() = libc::EPIPE;
                    }
                    r == 1
                }
                Step::Loopback => loopback_up(),
                Step::Hostname(h) => libc::sethostname(h.as_ptr(), h.as_bytes().len()) == 0,
                Step::Domainname(d) => libc::setdomainname(d.as_ptr(), d.as_bytes().len()) == 0,
                Step::Mount { source, target, fstype, flags, data, optional } => {
                    let fs = if fstype.is_empty() { std::ptr::null() } else { fstype.as_ptr() };
                    let d = if data.is_empty() { std::ptr::null() } else { data.as_ptr().cast() };
                    libc::mount(source.as_ptr(), target.as_ptr(), fs, *flags, d) == 0 || *optional
                }
                Step::Attach { mount, target } => {
                    libc::syscall(
                        libc::SYS_move_mount,
                        *mount,
                        c"".as_ptr(),
                        libc::AT_FDCWD,
                        target.as_ptr(),
                        MOVE_MOUNT_F_EMPTY_PATH,
                    ) == 0
                }
                Step::Chdir(dir) => libc::chdir(dir.as_ptr()) == 0,
                // pivot_root(2): with new_root == put_old the old root ends up stacked on top of the new one, and
                // detaching it leaves the new root alone.
                Step::PivotHere => {
                    libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) == 0
                        && libc::umount2(c".".as_ptr(), libc::MNT_DETACH) == 0
                        && libc::chdir(c"/".as_ptr()) == 0
                }
                Step::PivotCovered { put_old, cover } => {
                    let Step::Mount { source, target, fstype, flags, data, .. } = &**cover else {
                        fail(err_fd, i)
                    };
                    libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), put_old.as_ptr()) == 0
                        && libc::chdir(c"/".as_ptr()) == 0
                        && libc::mount(
                            source.as_ptr(),
                            target.as_ptr(),
                            fstype.as_ptr(),
                            *flags,
                            data.as_ptr().cast(),
                        ) == 0
                }
                Step::Umask(m) => {
                    libc::umask(*m);
                    true
                }
                Step::NoCoreDumps => {
                    let lim = libc::rlimit { rlim_cur: 0, rlim_max: libc::RLIM_INFINITY };
                    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                    libc::getrlimit(libc::RLIMIT_CORE, &mut cur);
                    let lim = libc::rlimit { rlim_max: cur.rlim_max, ..lim };
                    libc::setrlimit(libc::RLIMIT_CORE, &lim) == 0
                }
                Step::NewSession => libc::setsid() >= 0,
                Step::Stdio(fds) => {
                    // Moved out of the way first, so that a source numbered 0-2 is not overwritten early.
                    let mut high = [-1; 3];
                    let mut ok = true;
                    for (h, fd) in high.iter_mut().zip(fds) {
                        *h = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                        ok &= *h >= 0;
                    }
                    for (target, h) in high.iter().enumerate() {
                        ok = ok && libc::dup2(*h, target as libc::c_int) >= 0;
                    }
                    ok
                }
                Step::CloseOthers => {
                    // close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11); older kernels: one fcntl per slot.
                    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
                    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                        for fd in 3..4096 {
                            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                        }
                    }
                    true
                }
                Step::DefaultSignals => {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                    // Rust ignores SIGPIPE; an ignored signal stays ignored across execve.
                    for sig in 1..32 {
                        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                            libc::signal(sig, libc::SIG_DFL);
                        }
                    }
                    true
                }
                // Raw system calls: glibc's wrappers would also change the ids of the parent's other threads, which
                // it still believes this process has, and wait for them forever (nptl's setxid broadcast).
                Step::DropGroups => {
                    libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) == 0
                }
                Step::SwitchIds(uid, gid) => {
                    libc::syscall(libc::SYS_setgid, *gid) == 0 && libc::syscall(libc::SYS_setuid, *uid) == 0
                }
                Step::NoNewPrivs => libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0,
                Step::Landlock(fd) => libc::syscall(libc::SYS_landlock_restrict_self, *fd, 0u32) == 0,
                Step::DieWithParent => libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == 0,
            };
            if !ok {
                fail(err_fd, i);
            }
        }
        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(err_fd, steps.len())
    }
}

/// Brings up `lo` (netdevice(7) SIOCGIFFLAGS / SIOCSIFFLAGS) with raw calls.
///
/// # Safety
/// Async-signal-safe; for the child only.
unsafe fn loopback_up() -> bool {
    // SAFETY: plain socket and ioctl calls on a zeroed ifreq; the descriptor is closed before returning.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let ok = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0
        };
        libc::close(fd);
        ok
    }
}

/// Returns true if and only if this process can create a user namespace with mount and pid namespaces in it and
/// make its mounts private there (probed with a child that exits right after).
pub fn user_namespaces_work() -> bool {
    let Ok((sync_read, sync_write)) = pipe() else { return false };
    let flags =
        (libc::SIGCHLD | libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) as libc::c_long;
    // SAFETY: as in `spawn`: a fork-like clone whose child only makes raw system calls and exits.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid == 0 {
        // SAFETY: the child: read(2), mount(2) and _exit(2) only.
        unsafe {
            let mut b = [0u8; 1];
            let ok = libc::read(sync_read.as_raw_fd(), b.as_mut_ptr().cast(), 1) == 1
                && libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_PRIVATE | libc::MS_REC,
                    std::ptr::null(),
                ) == 0;
            libc::_exit(if ok { 0 } else { 1 })
        }
    }
    if pid < 0 {
        return false;
    }
    let child = Child { pid: Pid::from_raw(pid as i32), pidfd: None, namespaces: HeldNamespaces::default() };
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    let map =
        IdMap { inner_uid: uid, outer_uid: uid, inner_gid: gid, outer_gid: gid, allow_setgroups: false };
    let mapped = write_id_maps(child.pid, &map).is_ok();
    if mapped {
        let _ = nix::unistd::write(&sync_write, b"1");
    }
    drop(sync_write);
    matches!(child.wait(), Ok(WaitStatus::Exited(_, 0))) && mapped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An isolate with no namespace, mount or process setting: each test sets what it is about.
    fn bare(program: &str, args: Vec<OsString>) -> Isolate {
        Isolate {
            namespaces: Namespaces::default(),
            id_map: None,
            hostname: None,
            loopback: false,
            mounts: Vec::new(),
            root: None,
            cwd: "/".into(),
            program: program.into(),
            args,
            env: Vec::new(),
            stdio: [0, 1, 2],
            umask: 0o022,
            switch_ids: None,
            drop_groups: false,
            new_session: false,
            no_core_dumps: false,
            no_new_privs: false,
            landlock: None,
            die_with_parent: false,
            keep_namespaces: false,
            cover_old_root: None,
        }
    }

    #[test]
    fn steps_are_planned_in_order() {
        let iso = Isolate {
            namespaces: Namespaces { user: true, mount: true, pid: true, net: true, ipc: true, uts: true },
            id_map: Some(IdMap {
                inner_uid: 1000,
                outer_uid: 1,
                inner_gid: 100,
                outer_gid: 1,
                allow_setgroups: false,
            }),
            hostname: Some("localhost".into()),
            loopback: true,
            mounts: vec![
                Mount::Bind { source: "/a".into(), target: "/r/a".into(), read_only: true, recursive: false },
                Mount::Proc { target: "/r/proc".into() },
            ],
            root: Some("/r".into()),
            cwd: "/build".into(),
            new_session: true,
            no_core_dumps: true,
            no_new_privs: true,
            die_with_parent: true,
            keep_namespaces: true,
            ..bare("/bin/sh", vec!["sh".into()])
        };
        let (_, what) = iso.steps().unwrap();
        let pos =
            |s: &str| what.iter().position(|w| w.starts_with(s)).unwrap_or_else(|| panic!("{s}: {what:?}"));
        assert_eq!(pos("wait for"), 0);
        assert!(pos("make every mount private") < pos("bind-mount the root"));
        assert!(pos("bind-mount the root") < pos("bind-mount /a"));
        assert!(pos("bind-mount /a") < pos("remount /r/a read-only"));
        assert!(pos("mount proc") < pos("pivot_root"));
        assert!(pos("pivot_root") < pos("enter the working directory"));
        assert!(pos("set no_new_privs") < pos("set the parent-death signal"));
    }

    #[test]
    fn a_root_attached_first_is_not_bound_onto_itself() {
        let mut iso = Isolate {
            namespaces: Namespaces {
                user: false,
                mount: true,
                pid: true,
                net: false,
                ipc: false,
                uts: false,
            },
            mounts: vec![
                Mount::Attach { mount: 7, target: "/r".into() },
                Mount::Proc { target: "/r/proc".into() },
            ],
            root: Some("/r".into()),
            ..bare("/bin/sh", vec!["sh".into()])
        };
        let (_, what) = iso.steps().unwrap();
        assert!(what.iter().all(|w| !w.starts_with("bind-mount the root")), "{what:?}");
        let pos = |w: &[String], s: &str| w.iter().position(|x| x.starts_with(s)).unwrap();
        assert!(pos(&what, "make every mount private") < pos(&what, "attach a mount on /r"));
        assert!(pos(&what, "attach a mount on /r") < pos(&what, "mount proc"));
        // Attached anywhere else (or not first), the root is bound onto itself as usual.
        iso.mounts.swap(0, 1);
        let (_, what) = iso.steps().unwrap();
        assert!(pos(&what, "bind-mount the root") < pos(&what, "mount proc"), "{what:?}");
    }

    #[test]
    fn nul_bytes_are_refused() {
        let iso = bare("/bin/true", vec![OsString::from("a\0b")]);
        assert!(iso.spawn().is_err());
    }
}
