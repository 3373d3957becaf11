//! The sandbox of one build, as Nix's Linux sandbox makes it: a root directory in `<store>/.builds/<pid>-<n>/root`
//! (on the store's file system, so outputs are renamed into the store, not copied) holding `/tmp`, `/etc/passwd`,
//! `/etc/group`, `/etc/hosts`, a minimal `/dev`, `/proc`, the build directory at `/build`, the `sandbox-paths`
//! (`/bin/sh`), and under the store directory a bind mount of each path of the input closure, read-only; outputs
//! are written beside them. The child (`fhsenv::isolate`) gets user, mount, pid, ipc and uts namespaces, and a
//! network namespace with only `lo` unless the derivation is fixed-output; hostname `localhost`; Landlock on top.
//!
//! Who the builder is: an unprivileged caller maps itself to uid 1000 / gid 100 inside; root runs each build as a
//! build user (a member of `build-users-group`, else a uid from Nix's auto-allocation range), mapped to 1000/100 in
//! a user namespace, or switched to directly where user namespaces are unavailable.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fhsenv::isolate::{IdMap, Isolate, Mount, Namespaces};
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode};
use store::{Store, StorePath};

use crate::error::{BuildError, Result, io_err};
use crate::settings::Settings;

/// uid and gid of the builder inside a user namespace (Nix's `sandboxUid`/`sandboxGid`).
pub const SANDBOX_UID: u32 = 1000;
pub const SANDBOX_GID: u32 = 100;
/// The first uid of Nix's `auto-allocate-uids` range, used as root when there is no build users group.
pub const AUTO_UID_START: u32 = 872_415_232;
const AUTO_UID_COUNT: u32 = 128;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process: `<pid>-<counter>` (the pid lets the next builder remove what a killed one left).
pub(crate) fn unique_dir_name() -> String {
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A build user (as root): its ids, held exclusively while the build runs.
#[derive(Debug)]
pub(crate) struct BuildUser {
    pub uid: u32,
    pub gid: u32,
    _lock: Flock<File>,
}

/// The build users root may take, as (uid, gid): the members of `build-users-group`, else the uids of the
/// auto-allocation range (gid: the group's, else the same number). Looked up once per run (an NSS lookup opens
/// and reads a dozen files), not per build.
pub(crate) fn build_user_candidates(settings: &Settings) -> Vec<(u32, u32)> {
    let group = if settings.build_users_group.is_empty() {
        None
    } else {
        nix::unistd::Group::from_name(&settings.build_users_group).ok().flatten()
    };
    let mut candidates: Vec<(u32, u32)> = Vec::new();
    if let Some(g) = &group {
        for member in &g.mem {
            if let Ok(Some(u)) = nix::unistd::User::from_name(member)
                && !u.uid.is_root()
            {
                candidates.push((u.uid.as_raw(), g.gid.as_raw()));
            }
        }
    }
    if candidates.is_empty() {
        candidates = (AUTO_UID_START..AUTO_UID_START + AUTO_UID_COUNT).map(|u| (u, u)).collect();
    }
    candidates
}

/// Takes a free build user among `candidates` (see [`build_user_candidates`]), locked in `<state>/userpool`.
/// `None` when all are busy.
pub(crate) fn acquire_build_user(candidates: &[(u32, u32)], state_dir: &Path) -> Result<Option<BuildUser>> {
    let pool = state_dir.join("userpool");
    fs::create_dir_all(&pool).map_err(io_err("create directory", &pool))?;
    for &(uid, gid) in candidates {
        let path = pool.join(uid.to_string());
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open lock", &path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Some(BuildUser { uid, gid, _lock: lock })),
            Err((_, nix::Error::EWOULDBLOCK)) => continue,
            Err((_, e)) => return Err(io_err("lock", &path)(e.into())),
        }
    }
    Ok(None)
}

/// How the builder's ids are set.
#[derive(Debug)]
pub(crate) enum Identity {
    /// An unprivileged caller: itself, mapped to 1000/100 in a user namespace.
    Caller { uid: u32, gid: u32 },
    /// Root: a build user, mapped in a user namespace (`userns`) or switched to.
    BuildUser { user: BuildUser, userns: bool },
}

impl Identity {
    /// The uid and gid owning what the builder writes, on the host.
    pub fn host_ids(&self) -> (u32, u32) {
        match self {
            Identity::Caller { uid, gid } => (*uid, *gid),
            Identity::BuildUser { user, .. } => (user.uid, user.gid),
        }
    }

    /// The uid and gid the builder sees itself as.
    pub fn inner_ids(&self) -> (u32, u32) {
        match self {
            Identity::BuildUser { user, userns: false } => (user.uid, user.gid),
            _ => (SANDBOX_UID, SANDBOX_GID),
        }
    }

    fn uses_userns(&self) -> bool {
        !matches!(self, Identity::BuildUser { userns: false, .. })
    }
}

/// The directory of one sandbox, `<store>/.builds/<pid>-<n>`: the builder's store directory, or (where the tree
/// is on the host) the tree `root` and the store directory `store`; removed when dropped.
#[derive(Debug)]
pub(crate) struct Chroot {
    pub dir: PathBuf,
    /// The sandbox's root as the child finds it before pivoting: where its tmpfs is attached (`.builds`, in the
    /// child's mount namespace), or the host directory holding the tree.
    pub root: PathBuf,
    /// The builder's store directory on the host, on the store's file system (outputs are renamed into the store,
    /// not copied), bound onto the store directory inside the root.
    pub store_in_root: PathBuf,
    /// The root's tree, open: a detached tmpfs (attached on `root` in the child), or the host directory `root`.
    tree: Option<OwnedFd>,
    /// A detached bind mount of `store_in_root`, for the child to attach (with the tree a tmpfs attached on
    /// `.builds`, the path no longer reaches it there).
    store_mount: Option<OwnedFd>,
}

impl Chroot {
    /// A directory for a builtin builder's outputs (no tree).
    pub fn scratch(dir: PathBuf) -> Chroot {
        Chroot { dir: dir.clone(), root: dir.clone(), store_in_root: dir, tree: None, store_mount: None }
    }

    /// Where the builder's output `path` is on the host.
    pub fn output_location(&self, path: &StorePath) -> PathBuf {
        self.store_in_root.join(path.base_name())
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        // Nothing is mounted here on the host: the mounts lived in the builder's mount namespace only, and a
        // tmpfs tree went with it. What is left on the host is the store directory with the inputs' mount points.
        if let Err(e) = store::fsutil::remove_tree(&self.dir) {
            tracing::warn!("cannot remove the sandbox {}: {e}", self.dir.display());
        }
    }
}

/// Everything `prepare` needs.
pub(crate) struct SandboxInput<'a> {
    pub store: &'a Store,
    pub settings: &'a Settings,
    pub fixed_output: bool,
    /// Input closure plus the closures of store paths among `sandbox-paths`.
    pub inputs: &'a BTreeSet<StorePath>,
    /// The build directory on the host.
    pub build_dir: &'a Path,
    pub identity: &'a Identity,
    /// An input whose `usr`, `bin`, `lib*`, `sbin`, `opt` and `etc` entries appear at the root (see
    /// [`FHS_ROOT_ATTR`]).
    pub fhs_root: Option<&'a StorePath>,
}

/// The directory at the sandbox's root under which the host's root stays mounted, covered by an empty read-only
/// tmpfs, until the build's mount namespace ends: detaching it instead would cost each build an RCU grace period.
const OLD_ROOT: &str = "/.old-root";

/// The derivation attribute naming an FHS tree (an input store path holding `usr/…`) to show at the sandbox's
/// root, so that programs from Debian packages find their loader, libraries and data where they were built to
/// (fhskit's package set sets it; Nix ignores it).
pub const FHS_ROOT_ATTR: &str = "fhskitRoot";

fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path).map_err(io_err("create directory", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("set the mode of", path))
}

/// An empty mount point on the host of the kind of `source` (directory or file) at `target`.
fn mount_point(source: &Path, target: &Path) -> Result<()> {
    let is_dir = fs::metadata(source).map_err(io_err("read metadata of", source))?.is_dir();
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
    }
    if is_dir {
        fs::create_dir_all(target).map_err(io_err("create mount point", target))
    } else {
        File::create(target).map(drop).map_err(io_err("create mount point", target))
    }
}

/// A detached tmpfs (fsopen(2), fsmount(2); Linux 5.2) for the sandbox's tree, `nosuid,nodev`, root mode 0755:
/// made, filled and (with the build's mount namespace) dropped without touching the host's file system. Needs
/// CAP_SYS_ADMIN over this process's mount namespace, so an unprivileged caller gets an error (and a tree on the
/// host instead).
fn detached_tmpfs() -> std::io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
    let check = |r: libc::c_long| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) };
    // SAFETY: plain system calls on NUL-terminated constants; each returned descriptor is owned here only.
    unsafe {
        let fs = check(libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC))?;
        let fs = OwnedFd::from_raw_fd(fs as RawFd);
        check(libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            c"mode".as_ptr(),
            c"0755".as_ptr(),
            0,
        ))?;
        check(libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        ))?;
        let m = check(libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        ))?;
        Ok(OwnedFd::from_raw_fd(m as RawFd))
    }
}

/// A detached bind mount of the directory `path` (open_tree(2) with `OPEN_TREE_CLONE`; Linux 5.2), for a child
/// to attach where the path does not reach.
fn detached_bind(path: &Path) -> std::io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: open_tree(2) on a NUL-terminated path; the returned descriptor is owned here only.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The sandbox's tree, made relative to its root's descriptor (`root` only names things in messages). Paths are
/// relative to the root and never go up.
struct Tree<'a> {
    fd: BorrowedFd<'a>,
    root: &'a Path,
}

impl Tree<'_> {
    fn host(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    fn check(&self, rel: &Path) -> Result<()> {
        if rel.is_absolute() || rel.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(BuildError::Setting {
                name: "sandbox-paths".into(),
                reason: format!("'/{}' escapes the chroot", rel.display()),
            });
        }
        Ok(())
    }

    fn lstat(&self, rel: &Path) -> Option<nix::sys::stat::FileStat> {
        nix::sys::stat::fstatat(self.fd, rel, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok()
    }

    /// A directory with `mode` (also when it exists), and its missing ancestors (0755).
    fn mkdir(&self, rel: &Path, mode: u32) -> Result<()> {
        self.check(rel)?;
        let mut missing = Vec::new();
        let mut p = Some(rel);
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            if self.lstat(d).is_some() {
                break;
            }
            missing.push(d);
            p = d.parent();
        }
        for d in missing.iter().rev() {
            match nix::sys::stat::mkdirat(self.fd, *d, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(nix::Error::EEXIST) => {}
                Err(e) => return Err(io_err("create directory", self.host(d))(e.into())),
            }
        }
        nix::sys::stat::fchmodat(self.fd, rel, Mode::from_bits_truncate(mode), FchmodatFlags::NoFollowSymlink)
            .or_else(|e| {
                // fchmodat(2) without following is refused by older kernels and C libraries: the path was just
                // made a directory (or checked to be one) by this process.
                if e == nix::Error::EOPNOTSUPP || e == nix::Error::ENOTSUP {
                    nix::sys::stat::fchmodat(
                        self.fd,
                        rel,
                        Mode::from_bits_truncate(mode),
                        FchmodatFlags::FollowSymlink,
                    )
                } else {
                    Err(e)
                }
            })
            .map_err(|e| io_err("set the mode of", self.host(rel))(e.into()))
    }

    /// A new file holding `data` (0644).
    fn file(&self, rel: &Path, data: &[u8]) -> Result<()> {
        self.check(rel)?;
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty() && self.lstat(p).is_none()) {
            self.mkdir(parent, 0o755)?;
        }
        let fd = nix::fcntl::openat(
            self.fd,
            rel,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| io_err("create", self.host(rel))(e.into()))?;
        if !data.is_empty() {
            File::from(fd).write_all(data).map_err(io_err("write", self.host(rel)))?;
        }
        Ok(())
    }

    fn symlink(&self, to: &Path, rel: &Path) -> Result<()> {
        self.check(rel)?;
        nix::unistd::symlinkat(to, self.fd, rel)
            .map_err(|e| io_err("create symlink", self.host(rel))(e.into()))
    }

    /// An empty mount point of the kind of `source` (directory or file).
    fn mount_point(&self, source: &Path, rel: &Path) -> Result<()> {
        if fs::metadata(source).map_err(io_err("read metadata of", source))?.is_dir() {
            self.mkdir(rel, 0o755)
        } else {
            self.file(rel, b"")
        }
    }

    /// A directory of the tree, open for a Landlock rule.
    fn open_dir(&self, rel: &Path) -> Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        nix::fcntl::openat(
            self.fd,
            rel,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open", self.host(rel))(e.into()))
    }
}

/// Where the sandbox's directories live: `<physical store>/.builds`.
pub(crate) fn sandboxes_dir(store: &Store) -> PathBuf {
    store.physical_store_dir().join(".builds")
}

/// Makes the root of a sandbox and lists the mounts the child makes in it. The tree (`/tmp`, `/etc`, `/dev`, mount
/// points) goes into a detached tmpfs where this process may make one (as root), which the child attaches as its
/// root, else into a directory on the host; the store directory is a host directory either way.
pub(crate) fn prepare(input: &SandboxInput<'_>) -> Result<(Chroot, Vec<Mount>)> {
    let store = input.store;
    let parent = sandboxes_dir(store);
    fs::create_dir_all(&parent).map_err(io_err("create directory", &parent))?;
    let dir = parent.join(unique_dir_name());
    fs::create_dir(&dir).map_err(io_err("create directory", &dir))?;
    let mut mounts = Vec::new();
    // Each directory made here is an inode allocated and freed on the store's file system, which costs more than
    // the rest of the set-up where inodes churn (ext4 skips recently deleted ones one by one): with a detached
    // tmpfs, the directory is the store directory itself and the tmpfs is attached on `.builds` (in the child's
    // mount namespace only); on the host, `root` and `store` are made in it.
    let mut chroot = match detached_tmpfs() {
        Ok(fd) => {
            mounts.push(Mount::Attach { mount: fd.as_raw_fd(), target: parent.clone() });
            Chroot {
                dir: dir.clone(),
                root: parent.clone(),
                store_in_root: dir.clone(),
                tree: Some(fd),
                store_mount: None,
            }
        }
        Err(_) => {
            let root = dir.join("root");
            let mut chroot = Chroot {
                dir: dir.clone(),
                root: root.clone(),
                store_in_root: dir.join("store"),
                tree: None,
                store_mount: None,
            };
            mkdir(&root, 0o755)?;
            let fd = nix::fcntl::open(
                &root,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err("open", &root)(e.into()))?;
            chroot.tree = Some(fd);
            chroot
        }
    };
    let root = chroot.root.clone();
    let host_store = chroot.store_in_root.clone();
    mkdir(&host_store, 0o1775)?;
    if nix::unistd::geteuid().is_root() {
        let (host_uid, host_gid) = input.identity.host_ids();
        std::os::unix::fs::chown(&host_store, Some(host_uid), Some(host_gid))
            .map_err(io_err("change the owner of", &host_store))?;
    }
    if chroot.tree.is_some() && chroot.root == parent {
        chroot.store_mount =
            Some(detached_bind(&host_store).map_err(io_err("clone a mount of", &host_store))?);
    }
    let tree = Tree { fd: chroot.tree.as_ref().expect("set above").as_fd(), root: &root };
    let (uid, gid) = input.identity.inner_ids();
    let rel = |p: &Path| p.strip_prefix("/").unwrap_or(p).to_path_buf();

    // The store directory first: its ancestors (0755) may include /tmp, which must end up 1777.
    let store_rel = rel(store.store_dir().as_path());
    tree.mkdir(&store_rel, 0o755)?;
    match &chroot.store_mount {
        Some(fd) => mounts.push(Mount::Attach { mount: fd.as_raw_fd(), target: root.join(&store_rel) }),
        None => mounts.push(Mount::Bind {
            source: host_store.clone(),
            target: root.join(&store_rel),
            read_only: false,
            recursive: false,
        }),
    }
    tree.mkdir(Path::new("tmp"), 0o1777)?;
    tree.mkdir(Path::new("etc"), 0o755)?;
    let top = input.settings.sandbox_build_dir.display();
    tree.file(
        Path::new("etc/passwd"),
        format!(
            "root:x:0:0:Nix build user:{top}:/noshell\nnixbld:x:{uid}:{gid}:Nix build user:{top}:/noshell\n\
             nobody:x:65534:65534:Nobody:/:/noshell\n"
        )
        .as_bytes(),
    )?;
    tree.file(Path::new("etc/group"), format!("root:x:0:\nnixbld:!:{gid}:\nnogroup:x:65534:\n").as_bytes())?;
    if input.fixed_output {
        // Fixed-output builders download: they keep the host's network and name resolution.
        tree.file(Path::new("etc/nsswitch.conf"), b"hosts: files dns\nservices: files\n")?;
        for f in ["/etc/resolv.conf", "/etc/services", "/etc/hosts"] {
            let source = Path::new(f);
            if fs::metadata(source).is_ok() {
                tree.mount_point(source, &rel(source))?;
                let target = inside(&root, source);
                mounts.push(Mount::Bind { source: source.into(), target, read_only: true, recursive: false });
            }
        }
    } else {
        tree.file(Path::new("etc/hosts"), b"127.0.0.1 localhost\n::1 localhost\n")?;
    }

    // Inputs are mounted in the store directory, read-only; outputs appear beside them.
    let store_in_root = root.join(&store_rel);
    for p in input.inputs {
        let source = store.physical_path(p);
        let point = host_store.join(p.base_name());
        let meta = fs::symlink_metadata(&source).map_err(io_err("read metadata of", &source))?;
        if meta.is_symlink() {
            // A mount would follow the link; the link itself is what the store holds.
            let to = fs::read_link(&source).map_err(io_err("read symlink", &source))?;
            symlink(&to, &point).map_err(io_err("create symlink", &point))?;
            continue;
        }
        mount_point(&source, &point)?;
        let target = store_in_root.join(p.base_name());
        mounts.push(Mount::Bind { source, target, read_only: true, recursive: false });
    }

    if let Some(fhs) = input.fhs_root {
        link_fhs_root(store, fhs, &tree)?;
    }

    // The build directory.
    if input.settings.sandbox_build_dir.starts_with(store.store_dir().as_path()) {
        return Err(BuildError::Setting {
            name: "sandbox-build-dir".into(),
            reason: "`sandbox-build-dir` must not contain the storeDir".into(),
        });
    }
    tree.mount_point(input.build_dir, &rel(&input.settings.sandbox_build_dir))?;
    mounts.push(Mount::Bind {
        source: input.build_dir.into(),
        target: inside(&root, &input.settings.sandbox_build_dir),
        read_only: false,
        recursive: false,
    });

    // A minimal /dev.
    let dev = root.join("dev");
    tree.mkdir(Path::new("dev"), 0o755)?;
    for d in ["full", "null", "random", "tty", "urandom", "zero"] {
        let source = Path::new("/dev").join(d);
        if fs::metadata(&source).is_err() {
            continue;
        }
        tree.file(&Path::new("dev").join(d), b"")?;
        mounts.push(Mount::Bind { source, target: dev.join(d), read_only: false, recursive: false });
    }
    if Path::new("/dev/shm").is_dir() {
        tree.mkdir(Path::new("dev/shm"), 0o755)?;
        mounts.push(Mount::Tmpfs { target: dev.join("shm"), options: "mode=1777,size=50%".into() });
    }
    tree.mkdir(Path::new("dev/pts"), 0o755)?;
    mounts.push(Mount::Devpts { target: dev.join("pts") });
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        tree.symlink(Path::new(to), &Path::new("dev").join(link))?;
    }
    tree.mkdir(Path::new("proc"), 0o555)?;
    // Where the host's root goes, covered (see `fhsenv::isolate::Isolate::cover_old_root`).
    tree.mkdir(&rel(Path::new(OLD_ROOT)), 0o000)?;
    mounts.push(Mount::Proc { target: root.join("proc") });

    // sandbox-paths, e.g. /bin/sh.
    for sp in &input.settings.sandbox_paths {
        if fs::symlink_metadata(&sp.source).is_err() {
            if sp.optional {
                continue;
            }
            return Err(BuildError::Io {
                action: "find the sandbox path",
                path: sp.source.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let target_rel = rel(&sp.target);
        if sp.target.components().any(|c| c == std::path::Component::ParentDir) || target_rel.is_absolute() {
            return Err(BuildError::Setting {
                name: "sandbox-paths".into(),
                reason: format!("sandbox path '{}' escapes the chroot", sp.target.display()),
            });
        }
        let target = root.join(&target_rel);
        if let Ok(in_store) = target_rel.strip_prefix(&store_rel) {
            if fs::symlink_metadata(host_store.join(in_store)).is_ok() {
                continue; // an input already
            }
            mount_point(&sp.source, &host_store.join(in_store))?;
        } else {
            if input.fhs_root.is_some() && under_link(&tree, &target_rel) {
                continue; // the FHS tree provides this directory (its /bin/sh, say)
            }
            tree.mount_point(&sp.source, &target_rel)?;
        }
        mounts.push(Mount::Bind { source: sp.source.clone(), target, read_only: true, recursive: true });
    }
    Ok((chroot, mounts))
}

/// Links the top-level directories of the FHS tree `fhs` (an input, mounted in the store directory) at the
/// sandbox's root, and its `etc` entries into the sandbox's `/etc` where the sandbox has none of its own.
fn link_fhs_root(store: &Store, fhs: &StorePath, tree: &Tree<'_>) -> Result<()> {
    let physical = store.physical_path(fhs);
    let logical = fhs.to_string();
    for entry in ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt"] {
        if fs::symlink_metadata(physical.join(entry)).is_ok() {
            tree.symlink(Path::new(&format!("{logical}/{entry}")), Path::new(entry))?;
        }
    }
    let etc = physical.join("etc");
    if let Ok(entries) = fs::read_dir(&etc) {
        for e in entries {
            let e = e.map_err(io_err("read directory", &etc))?;
            let target = Path::new("etc").join(e.file_name());
            if tree.lstat(&target).is_none() {
                let to = format!("{logical}/etc/{}", e.file_name().to_string_lossy());
                tree.symlink(Path::new(&to), &target)?;
            }
        }
    }
    Ok(())
}

/// Whether a directory above `target` (relative to the root) is a symlink: an FHS tree's directory, read-only.
fn under_link(tree: &Tree<'_>, target: &Path) -> bool {
    let mut p = target.parent();
    while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
        if tree.lstat(dir).is_some_and(|m| m.st_mode & libc::S_IFMT == libc::S_IFLNK) {
            return true;
        }
        p = dir.parent();
    }
    false
}

/// The child of a sandboxed build.
pub(crate) struct SandboxChild<'a> {
    pub chroot: &'a Chroot,
    pub mounts: Vec<Mount>,
    pub identity: &'a Identity,
    pub fixed_output: bool,
    pub settings: &'a Settings,
    pub build_dir: &'a Path,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub stdio: [i32; 3],
}

/// The `Isolate` description of a sandboxed builder.
pub(crate) fn isolate(c: SandboxChild<'_>) -> Result<Isolate> {
    let (host_uid, host_gid) = c.identity.host_ids();
    let (uid, gid) = c.identity.inner_ids();
    let userns = c.identity.uses_userns();
    let as_root = nix::unistd::geteuid().is_root();
    let landlock = if c.settings.landlock
        && let Some(fd) = &c.chroot.tree
    {
        // The tree's directories by descriptor: a detached tmpfs has no path here.
        let tree = Tree { fd: fd.as_fd(), root: &c.chroot.root };
        let open = |p: &Path| {
            nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| io_err("open", p)(e.into()))
        };
        let writable = [
            tree.open_dir(Path::new("tmp"))?,
            open(c.build_dir)?,
            open(&c.chroot.store_in_root)?,
            tree.open_dir(Path::new("dev"))?,
            tree.open_dir(Path::new("proc"))?,
        ];
        fhsenv::sandbox::ruleset_fds(&[tree.open_dir(Path::new(""))?], &writable)?
    } else {
        None
    };
    Ok(Isolate {
        namespaces: Namespaces {
            user: userns,
            mount: true,
            pid: true,
            net: !c.fixed_output,
            ipc: true,
            uts: true,
        },
        id_map: userns.then_some(IdMap {
            inner_uid: uid,
            outer_uid: host_uid,
            inner_gid: gid,
            outer_gid: host_gid,
            allow_setgroups: as_root,
        }),
        hostname: Some("localhost".into()),
        loopback: !c.fixed_output,
        mounts: c.mounts,
        root: Some(c.chroot.root.clone()),
        cwd: c.settings.sandbox_build_dir.clone(),
        program: c.program,
        args: c.args,
        env: c.env,
        stdio: c.stdio,
        umask: 0o022,
        switch_ids: Some((uid, gid)),
        drop_groups: as_root,
        new_session: true,
        no_core_dumps: true,
        no_new_privs: !c.settings.allow_new_privileges,
        landlock,
        die_with_parent: true,
        keep_namespaces: true,
        cover_old_root: Some(OLD_ROOT.into()),
    })
}
