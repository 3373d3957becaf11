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
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fhsenv::isolate::{IdMap, Isolate, Mount, Namespaces};
use nix::fcntl::{Flock, FlockArg};
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

/// Takes a free build user: a member of `build-users-group`, else a uid of the auto-allocation range (gid: the
/// group's, else the same number). `None` when all are busy.
pub(crate) fn acquire_build_user(settings: &Settings, state_dir: &Path) -> Result<Option<BuildUser>> {
    let pool = state_dir.join("userpool");
    fs::create_dir_all(&pool).map_err(io_err("create directory", &pool))?;
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
    for (uid, gid) in candidates {
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

/// The root directory of one sandbox and its parent; removed when dropped.
#[derive(Debug)]
pub(crate) struct Chroot {
    pub dir: PathBuf,
    pub root: PathBuf,
    /// The store directory inside the root, on the host.
    pub store_in_root: PathBuf,
}

impl Chroot {
    /// Where the builder's output `path` is on the host.
    pub fn output_location(&self, path: &StorePath) -> PathBuf {
        self.store_in_root.join(path.base_name())
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        // Nothing is mounted here on the host: the mounts lived in the builder's mount namespace only.
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

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(io_err("write", path))
}

/// An empty mount point of the kind of `source` (directory or file) at `target`.
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

/// Where a sandbox's directory lives: `<physical store>/.builds`.
pub(crate) fn sandboxes_dir(store: &Store) -> PathBuf {
    store.physical_store_dir().join(".builds")
}

/// Makes the root directory of a sandbox and lists the mounts the child makes in it.
pub(crate) fn prepare(input: &SandboxInput<'_>) -> Result<(Chroot, Vec<Mount>)> {
    let store = input.store;
    let parent = sandboxes_dir(store);
    fs::create_dir_all(&parent).map_err(io_err("create directory", &parent))?;
    let dir = parent.join(unique_dir_name());
    fs::create_dir(&dir).map_err(io_err("create directory", &dir))?;
    let root = dir.join("root");
    let store_in_root = inside(&root, store.store_dir().as_path());
    let chroot = Chroot { dir, root: root.clone(), store_in_root: store_in_root.clone() };
    let (host_uid, host_gid) = input.identity.host_ids();
    let (uid, gid) = input.identity.inner_ids();
    let as_root = nix::unistd::geteuid().is_root();
    let chown = |p: &Path| -> Result<()> {
        if as_root {
            std::os::unix::fs::chown(p, Some(host_uid), Some(host_gid))
                .map_err(io_err("change the owner of", p))?;
        }
        Ok(())
    };
    let mut mounts = Vec::new();

    mkdir(&root, 0o755)?;
    // The store directory first: its ancestors (0755) may include /tmp, which must end up 1777.
    fs::create_dir_all(&store_in_root).map_err(io_err("create directory", &store_in_root))?;
    mkdir(&store_in_root, 0o1775)?;
    chown(&store_in_root)?;
    let mut ancestor = store_in_root.parent();
    while let Some(a) = ancestor.filter(|a| *a != root && a.starts_with(&root)) {
        fs::set_permissions(a, fs::Permissions::from_mode(0o755)).map_err(io_err("set the mode of", a))?;
        ancestor = a.parent();
    }
    mkdir(&root.join("tmp"), 0o1777)?;
    mkdir(&root.join("etc"), 0o755)?;
    let top = input.settings.sandbox_build_dir.display();
    write(
        &root.join("etc/passwd"),
        &format!(
            "root:x:0:0:Nix build user:{top}:/noshell\nnixbld:x:{uid}:{gid}:Nix build user:{top}:/noshell\n\
             nobody:x:65534:65534:Nobody:/:/noshell\n"
        ),
    )?;
    write(&root.join("etc/group"), &format!("root:x:0:\nnixbld:!:{gid}:\nnogroup:x:65534:\n"))?;
    if input.fixed_output {
        // Fixed-output builders download: they keep the host's network and name resolution.
        write(&root.join("etc/nsswitch.conf"), "hosts: files dns\nservices: files\n")?;
        for f in ["/etc/resolv.conf", "/etc/services", "/etc/hosts"] {
            let source = Path::new(f);
            if fs::metadata(source).is_ok() {
                let target = inside(&root, source);
                mount_point(source, &target)?;
                mounts.push(Mount::Bind { source: source.into(), target, read_only: true, recursive: false });
            }
        }
    } else {
        write(&root.join("etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n")?;
    }

    // Inputs are mounted in the store directory, read-only; outputs appear beside them.
    for p in input.inputs {
        let source = store.physical_path(p);
        let target = store_in_root.join(p.base_name());
        let meta = fs::symlink_metadata(&source).map_err(io_err("read metadata of", &source))?;
        if meta.is_symlink() {
            // A mount would follow the link; the link itself is what the store holds.
            let to = fs::read_link(&source).map_err(io_err("read symlink", &source))?;
            symlink(&to, &target).map_err(io_err("create symlink", &target))?;
            continue;
        }
        mount_point(&source, &target)?;
        mounts.push(Mount::Bind { source, target, read_only: true, recursive: false });
    }

    if let Some(fhs) = input.fhs_root {
        link_fhs_root(store, fhs, &root)?;
    }

    // The build directory.
    let build_target = inside(&root, &input.settings.sandbox_build_dir);
    if build_target.starts_with(&store_in_root) {
        return Err(BuildError::Setting {
            name: "sandbox-build-dir".into(),
            reason: "`sandbox-build-dir` must not contain the storeDir".into(),
        });
    }
    mount_point(input.build_dir, &build_target)?;
    mounts.push(Mount::Bind {
        source: input.build_dir.into(),
        target: build_target,
        read_only: false,
        recursive: false,
    });

    // A minimal /dev.
    let dev = root.join("dev");
    mkdir(&dev, 0o755)?;
    for d in ["full", "null", "random", "tty", "urandom", "zero"] {
        let source = Path::new("/dev").join(d);
        if fs::metadata(&source).is_err() {
            continue;
        }
        let target = dev.join(d);
        File::create(&target).map_err(io_err("create mount point", &target))?;
        mounts.push(Mount::Bind { source, target, read_only: false, recursive: false });
    }
    if Path::new("/dev/shm").is_dir() {
        mkdir(&dev.join("shm"), 0o755)?;
        mounts.push(Mount::Tmpfs { target: dev.join("shm"), options: "mode=1777,size=50%".into() });
    }
    mkdir(&dev.join("pts"), 0o755)?;
    mounts.push(Mount::Devpts { target: dev.join("pts") });
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(link)).map_err(io_err("create symlink", dev.join(link)))?;
    }
    mkdir(&root.join("proc"), 0o555)?;
    // Where the host's root goes, covered (see `fhsenv::isolate::Isolate::cover_old_root`).
    mkdir(&inside(&root, Path::new(OLD_ROOT)), 0o000)?;
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
        let target = inside(&root, &sp.target);
        if !target.starts_with(&root) || sp.target.components().any(|c| c == std::path::Component::ParentDir)
        {
            return Err(BuildError::Setting {
                name: "sandbox-paths".into(),
                reason: format!("sandbox path '{}' escapes the chroot", sp.target.display()),
            });
        }
        if target.starts_with(&store_in_root) && fs::symlink_metadata(&target).is_ok() {
            continue; // an input already
        }
        if input.fhs_root.is_some() && under_link(&root, &target) {
            continue; // the FHS tree provides this directory (its /bin/sh, say)
        }
        mount_point(&sp.source, &target)?;
        mounts.push(Mount::Bind { source: sp.source.clone(), target, read_only: true, recursive: true });
    }
    Ok((chroot, mounts))
}

/// Links the top-level directories of the FHS tree `fhs` (an input, mounted in the store directory) at the
/// sandbox's root, and its `etc` entries into the sandbox's `/etc` where the sandbox has none of its own.
fn link_fhs_root(store: &Store, fhs: &StorePath, root: &Path) -> Result<()> {
    let physical = store.physical_path(fhs);
    let logical = fhs.to_string();
    for entry in ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt"] {
        if fs::symlink_metadata(physical.join(entry)).is_ok() {
            let target = root.join(entry);
            symlink(format!("{logical}/{entry}"), &target).map_err(io_err("create symlink", &target))?;
        }
    }
    let etc = physical.join("etc");
    if let Ok(entries) = fs::read_dir(&etc) {
        for e in entries {
            let e = e.map_err(io_err("read directory", &etc))?;
            let target = root.join("etc").join(e.file_name());
            if fs::symlink_metadata(&target).is_err() {
                let to = format!("{logical}/etc/{}", e.file_name().to_string_lossy());
                symlink(to, &target).map_err(io_err("create symlink", &target))?;
            }
        }
    }
    Ok(())
}

/// Whether a directory above `target` (below `root`) is a symlink: an FHS tree's directory, read-only.
fn under_link(root: &Path, target: &Path) -> bool {
    let mut p = target.parent();
    while let Some(dir) = p.filter(|d| *d != root && d.starts_with(root)) {
        if fs::symlink_metadata(dir).is_ok_and(|m| m.is_symlink()) {
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
    let landlock = if c.settings.landlock {
        let root = &c.chroot.root;
        let writable = [
            root.join("tmp"),
            c.build_dir.to_path_buf(),
            c.chroot.store_in_root.clone(),
            root.join("dev"),
            root.join("proc"),
        ];
        fhsenv::sandbox::ruleset(std::slice::from_ref(root), &writable)?
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
