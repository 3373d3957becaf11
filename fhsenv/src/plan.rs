//! The mount plan: everything the launcher will mount, as plain data computed from the env, the options and a
//! snapshot of the host (`HostInfo`), so it can be unit-tested without privileges and printed with `--dry-run`.
//!
//! `mount` performs a plan; `launch` builds one. Paths in `Op`s are absolute: sources on the host, targets inside the
//! new root. Ops are ordered so that a mount point's parent is mounted before it.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec::{EnvSpec, Mode};

/// Where the env tree appears inside (the `/etc` links point into it).
pub const ENV_MOUNT: &str = "/.fhsenv";
/// Where the host's `/etc` appears inside (live host files are links into it), as buildFHSEnv does.
pub const HOST_ETC: &str = "/.host-etc";

/// Host `/etc` entries made visible (as live links) unless the env provides its own.
pub const HOST_ETC_ALLOW: [&str; 31] = [
    "passwd",
    "group",
    "shadow",
    "hosts",
    "hostname",
    "resolv.conf",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "services",
    "protocols",
    "localtime",
    "timezone",
    "zoneinfo",
    "machine-id",
    "os-release",
    "login.defs",
    "sudoers",
    "sudoers.d",
    "pam.d",
    "profile.d",
    "static",
    "nix",
    "shells",
    "ca-certificates",
    "pki",
    "alsa",
    "asound.conf",
    "dconf",
    "X11",
    "vulkan",
];

/// Host `/etc` entries used even when the env provides them (certificates and fonts must match the host).
pub const HOST_ETC_ALWAYS: [&str; 2] = ["ssl", "fonts"];

/// Debian's multiarch library directories, with the env's directory that holds their libraries: paths compiled
/// into Debian's libraries name them. The env tree has empty directories there; nixos mode binds the env's
/// directory on them, overlay mode an overlay of the env's directory over the host's.
pub const MULTIARCH: [(&str, &str); 2] =
    [("/usr/lib/x86_64-linux-gnu", "usr/lib"), ("/usr/lib/i386-linux-gnu", "usr/lib32")];

/// Top-level entries the env provides (nixos mode: links into its `/usr`), with the `/usr` directory they show.
const FHS_TOP_LEVEL: [(&str, Option<&str>); 7] = [
    ("bin", Some("bin")),
    ("sbin", Some("sbin")),
    ("lib", Some("lib")),
    ("lib64", Some("lib64")),
    ("lib32", Some("lib32")),
    ("libx32", None),
    ("libexec", None),
];

/// Host top-level directories never bound into the env (the env provides them, or they are set up specially).
const NOT_AUTO_BOUND: [&str; 16] = [
    "usr",
    "bin",
    "sbin",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "libexec",
    "etc",
    "proc",
    "dev",
    "sys",
    "run",
    "tmp",
    ".fhsenv",
    ".host-etc",
];

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A fresh tmpfs.
    Tmpfs {
        /// Mount point inside.
        target: PathBuf,
        /// Permission bits of its root.
        mode: u32,
        /// Remount read-only after creation (hidden directories).
        read_only: bool,
    },
    /// A bind mount of a host path.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Mount point inside.
        target: PathBuf,
        /// Include sub-mounts (`MS_REC`).
        recursive: bool,
        /// Remount read-only.
        read_only: bool,
        /// Skip silently when the source is missing.
        optional: bool,
    },
    /// A read-only overlayfs: the first lower directory wins.
    Overlay {
        /// Mount point inside.
        target: PathBuf,
        /// Host directories, highest priority first.
        lower: Vec<PathBuf>,
    },
    /// A symbolic link created inside.
    Symlink {
        /// The link's path inside.
        link: PathBuf,
        /// What it points to.
        target: PathBuf,
    },
    /// A fresh procfs (only inside a new pid namespace; mounted by the pid-1 process).
    Proc {
        /// Mount point inside.
        target: PathBuf,
        /// Mounted read-only (sandbox).
        read_only: bool,
    },
    /// Hides what is at `target`, read-only: a directory behind an empty tmpfs, any other file behind an empty
    /// file; nothing when nothing (or a symbolic link) is there.
    Hide {
        /// Path inside.
        target: PathBuf,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Tmpfs { target, mode, read_only } => {
                write!(f, "tmpfs {} mode={mode:o}{}", target.display(), if *read_only { " ro" } else { "" })
            }
            Op::Bind { source, target, recursive, read_only, optional } => write!(
                f,
                "bind {} {}{}{}{}",
                source.display(),
                target.display(),
                if *read_only { " ro" } else { " rw" },
                if *recursive { " rec" } else { "" },
                if *optional { " optional" } else { "" }
            ),
            Op::Overlay { target, lower } => {
                let lower: Vec<_> = lower.iter().map(|p| p.display().to_string()).collect();
                write!(f, "overlay {} lower={}", target.display(), lower.join(":"))
            }
            Op::Symlink { link, target } => write!(f, "symlink {} -> {}", link.display(), target.display()),
            Op::Proc { target, read_only } => {
                write!(f, "proc {}{}", target.display(), if *read_only { " ro" } else { "" })
            }
            Op::Hide { target } => write!(f, "hide {}", target.display()),
        }
    }
}

/// What the plan needs to know about the host, collected once by `HostInfo::probe`.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// Top-level entries of `/`: (name, is a directory (not a link), link target if a link).
    pub top_level: Vec<(String, bool, Option<PathBuf>)>,
    /// Entries of the host's `/etc`.
    pub etc: BTreeSet<String>,
    /// `/.host-etc` exists: we are inside another env, whose host view is propagated.
    pub nested: bool,
    /// The working directory to preserve.
    pub cwd: PathBuf,
    /// `$HOME`, for `~` in paths.
    pub home: Option<PathBuf>,
    /// The [`MULTIARCH`] directories the host has.
    pub multiarch: Vec<PathBuf>,
}

impl HostInfo {
    /// Reads the host's `/`, `/etc`, the cwd and `$HOME`.
    pub fn probe() -> Result<HostInfo> {
        let mut top_level = Vec::new();
        for entry in std::fs::read_dir("/").map_err(Error::io("read", "/"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type().map_err(Error::io("stat", entry.path()))?;
            let link = if kind.is_symlink() { std::fs::read_link(entry.path()).ok() } else { None };
            top_level.push((name, kind.is_dir(), link));
        }
        top_level.sort();
        let nested = Path::new(HOST_ETC).is_dir();
        let etc_dir = if nested { HOST_ETC } else { "/etc" };
        let etc = std::fs::read_dir(etc_dir)
            .map_err(Error::io("read", etc_dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute());
        let multiarch =
            MULTIARCH.iter().map(|(dir, _)| PathBuf::from(dir)).filter(|dir| dir.is_dir()).collect();
        Ok(HostInfo { top_level, etc, nested, cwd, home, multiarch })
    }

    /// Expands a leading `~` to `$HOME`; `.` and relative paths are taken from the cwd.
    pub fn expand(&self, path: &Path) -> PathBuf {
        let expanded = match (path.strip_prefix("~"), &self.home) {
            (Ok(rest), Some(home)) => home.join(rest),
            _ => self.cwd.join(path),
        };
        normalize(&expanded)
    }
}

/// Lexically normalises an absolute path (`.` and `..` removed).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Options of one launch that change the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Overrides the spec's mode.
    pub mode: Option<Mode>,
    /// Host paths to hide wherever they are visible inside (the sandbox's `hide` list and secrets, expanded).
    pub hide: Vec<PathBuf>,
    /// Sandbox mode: every host path is mounted read-only except these paths inside (expanded), which are bound
    /// writable from where they come from on the host.
    pub writable: Option<Vec<PathBuf>>,
}

/// A complete plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountPlan {
    /// Steps in order.
    pub ops: Vec<Op>,
    /// The working directory inside.
    pub cwd: PathBuf,
    /// Things the user should know (a cwd that cannot be preserved).
    pub warnings: Vec<String>,
}

impl MountPlan {
    /// Number of mount operations (links not counted).
    pub fn mount_count(&self) -> usize {
        self.ops.iter().filter(|op| !matches!(op, Op::Symlink { .. })).count()
    }
}

/// Paths the env itself provides inside (a host path below one of them is hidden).
fn replaced(path: &Path) -> bool {
    matches!(
        path.components().nth(1),
        Some(Component::Normal(s)) if ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libexec"].iter().any(|r| s == *r)
    )
}

/// Computes the mount plan for entering the env at `env_root` built from `spec`.
pub fn plan(
    spec: &EnvSpec,
    env_root: &Path,
    env_etc: &[String],
    host: &HostInfo,
    options: &PlanOptions,
) -> Result<MountPlan> {
    let mode = options.mode.unwrap_or(spec.mode);
    // A sandbox shows the host read-only: chmod, chown and writes fail with EROFS, even for root (Landlock has no
    // rule for attribute changes).
    let sandboxed = options.writable.is_some();
    let mut ops = Vec::new();
    let mut warnings = Vec::new();
    // Host trees visible inside at their own path.
    let mut identity: Vec<PathBuf> = Vec::new();
    let bind = |source: &Path, target: &Path, recursive: bool, read_only: bool| Op::Bind {
        source: source.into(),
        target: target.into(),
        recursive,
        read_only: read_only || sandboxed,
        optional: false,
    };

    ops.push(bind(env_root, Path::new(ENV_MOUNT), false, true));
    match mode {
        Mode::Nixos => ops.push(bind(&env_root.join("usr"), Path::new("/usr"), false, true)),
        Mode::Overlay => ops.push(Op::Overlay {
            target: "/usr".into(),
            lower: vec![env_root.join("usr"), PathBuf::from("/usr")],
        }),
    }
    for (dir, env_dir) in MULTIARCH {
        let mount_point = env_root.join(dir.trim_start_matches('/'));
        let empty = std::fs::read_dir(&mount_point).is_ok_and(|mut entries| entries.next().is_none());
        let source = env_root.join(env_dir);
        if !empty || !source.is_dir() {
            continue;
        }
        if mode == Mode::Overlay && host.multiarch.iter().any(|d| d == Path::new(dir)) {
            ops.push(Op::Overlay { target: dir.into(), lower: vec![source, dir.into()] });
        } else {
            ops.push(bind(&source, Path::new(dir), false, true));
        }
    }
    let host_entry = |name: &str| host.top_level.iter().find(|(n, _, _)| n == name);
    for (name, in_usr) in FHS_TOP_LEVEL {
        let path = Path::new("/").join(name);
        let env_dir = in_usr.map(|dir| env_root.join("usr").join(dir)).filter(|dir| dir.is_dir());
        // Overlay mode keeps every host path the env does not provide: the host's own top-level links (a merged
        // /usr), and a host directory (an unmerged /lib) with the env's files over it.
        match (mode, host_entry(name)) {
            (Mode::Overlay, Some((_, _, Some(target)))) => {
                ops.push(Op::Symlink { link: path, target: target.clone() });
            }
            (Mode::Overlay, Some((_, true, None))) => match env_dir {
                Some(env_dir) => ops.push(Op::Overlay { target: path.clone(), lower: vec![env_dir, path] }),
                None => ops.push(bind(&path, &path, true, true)),
            },
            _ => {
                if let Some(dir) = in_usr {
                    ops.push(Op::Symlink { link: path, target: Path::new("usr").join(dir) });
                }
            }
        }
    }
    let env_has_opt = env_root.join("opt").is_dir();
    let host_has_opt = matches!(host_entry("opt"), Some((_, true, None)));
    if env_has_opt {
        if mode == Mode::Overlay && host_has_opt {
            ops.push(Op::Overlay { target: "/opt".into(), lower: vec![env_root.join("opt"), "/opt".into()] });
        } else {
            ops.push(bind(&env_root.join("opt"), Path::new("/opt"), false, true));
        }
    }

    // /etc: the env's files, then live links to allowed host files.
    ops.push(Op::Tmpfs { target: "/etc".into(), mode: 0o755, read_only: false });
    ops.push(bind(Path::new(HOST_ETC), Path::new(HOST_ETC), false, true));
    if let Some(Op::Bind { source, .. }) = ops.last_mut() {
        *source = if host.nested { PathBuf::from(HOST_ETC) } else { PathBuf::from("/etc") };
    }
    let mut etc_names: BTreeSet<&str> = BTreeSet::new();
    for name in env_etc {
        if HOST_ETC_ALWAYS.contains(&name.as_str()) && host.etc.contains(name) {
            continue;
        }
        let target = if mode == Mode::Overlay && name == "ld.so.cache" {
            Path::new(ENV_MOUNT).join("etc/ld.so.cache.overlay")
        } else {
            Path::new(ENV_MOUNT).join("etc").join(name)
        };
        ops.push(Op::Symlink { link: Path::new("/etc").join(name), target });
        etc_names.insert(name);
    }
    // Overlay mode: the host's programs keep all of their configuration (`/etc/alternatives`, …).
    let host_etc: Vec<&str> = match mode {
        Mode::Overlay => host.etc.iter().map(String::as_str).collect(),
        Mode::Nixos => HOST_ETC_ALLOW
            .iter()
            .chain(HOST_ETC_ALWAYS.iter())
            .copied()
            .filter(|name| host.etc.contains(*name))
            .collect(),
    };
    for name in host_etc {
        if !etc_names.contains(name) {
            ops.push(Op::Symlink {
                link: Path::new("/etc").join(name),
                target: Path::new(HOST_ETC).join(name),
            });
        }
    }

    // Kernel and runtime file systems. In a sandbox /dev is read-only too (device nodes stay usable: a read-only
    // mount does not stop writes to them) with a private /dev/shm, since shared memory needs a writable one.
    ops.push(bind(Path::new("/dev"), Path::new("/dev"), true, false));
    if sandboxed {
        ops.push(Op::Tmpfs { target: "/dev/shm".into(), mode: 0o1777, read_only: false });
    }
    if spec.unshare.pid {
        ops.push(Op::Proc { target: "/proc".into(), read_only: sandboxed });
    } else {
        ops.push(bind(Path::new("/proc"), Path::new("/proc"), true, false));
    }
    for dir in ["/sys", "/run"] {
        if host.top_level.iter().any(|(n, is_dir, _)| *is_dir && Path::new("/").join(n) == Path::new(dir)) {
            ops.push(bind(Path::new(dir), Path::new(dir), true, false));
            identity.push(dir.into());
        }
    }
    if spec.private_tmp {
        ops.push(Op::Tmpfs { target: "/tmp".into(), mode: 0o1777, read_only: false });
    } else {
        ops.push(bind(Path::new("/tmp"), Path::new("/tmp"), true, false));
        identity.push("/tmp".into());
    }

    // Every other host top-level directory, read-write, by exact name (no prefix matching).
    for (name, is_dir, link) in &host.top_level {
        if NOT_AUTO_BOUND.contains(&name.as_str()) || (name == "opt" && env_has_opt) || name == "lost+found" {
            continue;
        }
        let path = Path::new("/").join(name);
        match link {
            Some(target) => ops.push(Op::Symlink { link: path, target: target.clone() }),
            None if *is_dir => {
                ops.push(bind(&path, &path, true, false));
                identity.push(path);
            }
            None => {}
        }
    }

    let covered = |identity: &[PathBuf], path: &Path| identity.iter().any(|i| path.starts_with(i));
    let mut nested_ops = Vec::new();
    // The store and package directories: the farm's links point into them.
    let mut needed: Vec<PathBuf> = spec.store_dir.iter().cloned().collect();
    for (package, _) in spec.all_packages() {
        if !spec.store_dir.as_ref().is_some_and(|s| package.starts_with(s)) {
            needed.push(package.parent().unwrap_or(package).to_path_buf());
        }
    }
    needed.sort();
    needed.dedup();
    for dir in needed {
        // In overlay mode the host's /usr shows through, read-only.
        if covered(&identity, &dir) || (mode == Mode::Overlay && dir.starts_with("/usr")) {
            continue;
        }
        if replaced(&dir) || dir.starts_with("/etc") || dir == Path::new("/") {
            return Err(Error::Plan {
                path: dir,
                reason: "package directories must not live below /, /usr, /bin, /lib* or /etc, which the env replaces".into(),
            });
        }
        nested_ops.push(bind(&dir, &dir, false, true));
        identity.push(dir);
    }
    for extra in &spec.bind {
        let source = host.expand(&extra.source);
        let target = extra.target.as_deref().map_or_else(|| source.clone(), |t| host.expand(t));
        if replaced(&target) && mode == Mode::Nixos {
            return Err(Error::Plan {
                path: target,
                reason: "cannot bind into the env's read-only /usr or /lib*".into(),
            });
        }
        nested_ops.push(Op::Bind {
            source,
            target,
            recursive: true,
            read_only: extra.read_only || sandboxed,
            optional: extra.optional,
        });
    }
    // Where a host path shows inside: through the host's /etc view, at its own path, or through a bind.
    let shown_at = |host_path: &Path, ops: &[Op]| -> Vec<PathBuf> {
        let mut at = Vec::new();
        if let Ok(rest) = host_path.strip_prefix("/etc") {
            at.push(Path::new(HOST_ETC).join(rest));
        }
        if covered(&identity, host_path) {
            at.push(host_path.to_owned());
        }
        for op in ops {
            if let Op::Bind { source, target, .. } = op
                && let Ok(rest) = host_path.strip_prefix(source)
                && !at.contains(&target.join(rest))
                && source != Path::new(HOST_ETC)
            {
                at.push(if rest.as_os_str().is_empty() { target.clone() } else { target.join(rest) });
            }
        }
        at
    };
    let mut hide_ops = Vec::new();
    for hidden in &options.hide {
        for target in shown_at(hidden, &nested_ops) {
            if !hide_ops.iter().any(|op| matches!(op, Op::Hide { target: t } if *t == target)) {
                hide_ops.push(Op::Hide { target });
            }
        }
    }
    nested_ops.extend(hide_ops);
    // The working directory: bound when nothing above makes it visible.
    let mut cwd = normalize(&host.cwd);
    let hidden = nested_ops.iter().any(|op| matches!(op, Op::Hide { target } if cwd.starts_with(target)));
    let visible = !hidden
        && (covered(&identity, &cwd)
            || nested_ops.iter().any(|op| matches!(op, Op::Bind { target, .. } if cwd.starts_with(target))));
    if cwd != Path::new("/") && !visible {
        if replaced(&cwd) && mode == Mode::Nixos {
            warnings.push(format!(
                "the working directory {} is hidden by the env's own tree; starting in /",
                cwd.display()
            ));
            cwd = PathBuf::from("/");
        } else {
            nested_ops.push(bind(&cwd, &cwd, true, false));
        }
    }
    // Writable directories: bound writable over the read-only view, from the host path they show.
    for dir in options.writable.iter().flatten() {
        if spec.private_tmp && dir.starts_with("/tmp") {
            continue; // a private tmpfs, writable already
        }
        let from_bind = nested_ops.iter().rev().find_map(|op| match op {
            Op::Bind { source, target, .. } if dir.starts_with(target) => dir
                .strip_prefix(target)
                .ok()
                .map(|rest| if rest.as_os_str().is_empty() { source.clone() } else { source.join(rest) }),
            _ => None,
        });
        let source = match from_bind {
            Some(source) => source,
            None if covered(&identity, dir) => dir.clone(),
            None => {
                warnings.push(format!(
                    "the writable directory {} is not a host directory the env shows; it stays read-only",
                    dir.display()
                ));
                continue;
            }
        };
        nested_ops.push(Op::Bind {
            source,
            target: dir.clone(),
            recursive: true,
            read_only: false,
            optional: true,
        });
    }

    // Parents before children (a stable sort: at one depth a writable bind stays after what it uncovers).
    nested_ops.sort_by_key(|op| match op {
        Op::Bind { target, .. } | Op::Tmpfs { target, .. } | Op::Hide { target } => {
            target.components().count()
        }
        _ => 0,
    });
    ops.extend(nested_ops);
    Ok(MountPlan { ops, cwd, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BindSpec;

    fn host() -> HostInfo {
        let top = |n: &str| (n.to_owned(), true, None);
        HostInfo {
            top_level: vec![
                top("bin"),
                top("dev"),
                top("etc"),
                top("home"),
                top("nix"),
                top("proc"),
                top("run"),
                top("srv"),
                top("sys"),
                top("tmp"),
                top("usr"),
                ("lib64".into(), false, Some("usr/lib64".into())),
                ("home2".into(), false, Some("/var/home".into())),
            ],
            etc: ["passwd", "group", "resolv.conf", "ssl", "fonts", "shadow"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            nested: false,
            cwd: "/home/u/project".into(),
            home: Some("/home/u".into()),
            multiarch: Vec::new(),
        }
    }

    fn spec() -> EnvSpec {
        EnvSpec {
            packages: vec!["/nix/store/a-glibc".into(), "/home/u/pkgs/app".into()],
            ..EnvSpec::default()
        }
    }

    fn targets(plan: &MountPlan) -> Vec<String> {
        plan.ops.iter().map(|op| op.to_string()).collect()
    }

    #[test]
    fn nixos_mode_replaces_usr_and_binds_host_dirs_by_exact_name() {
        let env_etc = vec!["profile".to_owned(), "ld.so.cache".to_owned(), "fonts".to_owned()];
        let plan = plan(&spec(), Path::new("/envs/e"), &env_etc, &host(), &PlanOptions::default()).unwrap();
        let ops = targets(&plan);
        assert!(ops.contains(&"bind /envs/e/usr /usr ro".to_owned()), "{ops:#?}");
        assert!(ops.contains(&"symlink /lib64 -> usr/lib64".to_owned()));
        assert!(ops.contains(&"bind /home /home rw rec".to_owned()));
        assert!(ops.contains(&"bind /nix /nix rw rec".to_owned()));
        assert!(ops.contains(&"bind /srv /srv rw rec".to_owned()));
        assert!(ops.contains(&"symlink /home2 -> /var/home".to_owned()));
        assert!(ops.contains(&"bind /proc /proc rw rec".to_owned()));
        assert!(ops.contains(&"symlink /etc/profile -> /.fhsenv/etc/profile".to_owned()));
        assert!(ops.contains(&"symlink /etc/passwd -> /.host-etc/passwd".to_owned()));
        assert!(ops.contains(&"symlink /etc/fonts -> /.host-etc/fonts".to_owned()), "host fonts always win");
        assert!(!ops.iter().any(|o| o.contains("/.fhsenv/etc/fonts")));
        assert!(!ops.iter().any(|o| o.starts_with("bind /usr ") || o.starts_with("bind /bin ")));
        // Packages under /nix and /home are covered by those binds; the cwd under /home too.
        assert!(!ops.iter().any(|o| o.contains("a-glibc") || o.contains("/home/u/pkgs")));
        assert_eq!(plan.cwd, Path::new("/home/u/project"));
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn private_tmp_pid_overlay_and_uncovered_paths() {
        let mut spec = spec();
        spec.private_tmp = true;
        spec.unshare.pid = true;
        spec.mode = Mode::Overlay;
        spec.packages.push("/tmp/pkgs/x".into());
        spec.bind.push(BindSpec { source: "~/data".into(), target: None, read_only: true, optional: true });
        let mut host = host();
        host.cwd = "/tmp/work".into();
        let options = PlanOptions { mode: None, hide: vec!["/home/u/.ssh".into()], writable: None };
        let plan = plan(&spec, Path::new("/envs/e"), &["ld.so.cache".into()], &host, &options).unwrap();
        let ops = targets(&plan);
        assert!(ops.contains(&"overlay /usr lower=/envs/e/usr:/usr".to_owned()), "{ops:#?}");
        assert!(ops.contains(&"symlink /etc/ld.so.cache -> /.fhsenv/etc/ld.so.cache.overlay".to_owned()));
        assert!(ops.contains(&"tmpfs /tmp mode=1777".to_owned()));
        assert!(ops.contains(&"proc /proc".to_owned()));
        assert!(
            ops.contains(&"bind /tmp/pkgs /tmp/pkgs ro".to_owned()),
            "package parent bound into the private /tmp"
        );
        assert!(ops.contains(&"bind /tmp/work /tmp/work rw rec".to_owned()), "cwd bound");
        assert!(ops.contains(&"bind /home/u/data /home/u/data ro rec optional".to_owned()));
        assert!(ops.contains(&"hide /home/u/.ssh".to_owned()));
        let tmpfs_at = ops.iter().position(|o| o == "tmpfs /tmp mode=1777").unwrap();
        let pkgs_at = ops.iter().position(|o| o.starts_with("bind /tmp/pkgs")).unwrap();
        assert!(tmpfs_at < pkgs_at, "parents first");
    }

    #[test]
    fn overlay_mode_keeps_the_hosts_top_level_links_directories_and_etc() {
        let mut host = host();
        // An unmerged /lib (a real directory), a merged /lib64 (a link), no /lib32.
        host.top_level.push(("lib".into(), true, None));
        host.etc.insert("alternatives".into());
        host.multiarch.push("/usr/lib/x86_64-linux-gnu".into());
        let env = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(env.path().join("usr/lib/x86_64-linux-gnu")).unwrap();
        let options = PlanOptions { mode: Some(Mode::Overlay), hide: Vec::new(), writable: None };
        let ops = targets(&plan(&spec(), env.path(), &["profile".into()], &host, &options).unwrap());
        let root = env.path().display();
        assert!(ops.contains(&format!("overlay /lib lower={root}/usr/lib:/lib")), "{ops:#?}");
        // The multiarch directory shows the env's libraries over the host's.
        let multiarch =
            format!("overlay /usr/lib/x86_64-linux-gnu lower={root}/usr/lib:/usr/lib/x86_64-linux-gnu");
        assert!(ops.contains(&multiarch), "{ops:#?}");
        assert!(ops.contains(&"symlink /lib64 -> usr/lib64".to_owned()), "{ops:#?}");
        assert!(ops.contains(&"symlink /lib32 -> usr/lib32".to_owned()), "{ops:#?}");
        assert!(ops.contains(&"bind /bin /bin ro rec".to_owned()), "the env has no usr/bin: {ops:#?}");
        assert!(ops.contains(&"symlink /etc/alternatives -> /.host-etc/alternatives".to_owned()), "{ops:#?}");
        // The cwd below /usr shows through the overlay, writable.
        host.cwd = "/usr/src/linux".into();
        let in_usr = plan(&spec(), env.path(), &[], &host, &options).unwrap();
        assert_eq!(in_usr.cwd, Path::new("/usr/src/linux"));
        assert!(targets(&in_usr).contains(&"bind /usr/src/linux /usr/src/linux rw rec".to_owned()));
        // nixos mode links them all into the env's /usr and shows only the allowed host /etc entries.
        let ops = targets(&plan_nixos(&host, env.path()));
        assert!(ops.contains(&"symlink /lib -> usr/lib".to_owned()), "{ops:#?}");
        assert!(ops.contains(&format!("bind {root}/usr/lib /usr/lib/x86_64-linux-gnu ro")), "{ops:#?}");
        assert!(!ops.iter().any(|o| o.contains("alternatives")), "{ops:#?}");
    }

    fn plan_nixos(host: &HostInfo, env: &Path) -> MountPlan {
        let mut host = host.clone();
        host.cwd = "/home/u".into();
        plan(&spec(), env, &[], &host, &PlanOptions::default()).unwrap()
    }

    #[test]
    fn a_sandbox_shows_the_host_read_only_with_writable_dirs_bound_over_it_and_secrets_hidden() {
        let mut host = host();
        host.top_level.push(("root".into(), true, None));
        host.cwd = "/root/work".into();
        let mut spec = spec();
        spec.bind.push(BindSpec {
            source: "/srv/data".into(),
            target: Some("/data".into()),
            read_only: false,
            optional: false,
        });
        let options = PlanOptions {
            mode: None,
            hide: vec!["/root".into(), "/etc/shadow".into(), "/srv/data/secret".into()],
            writable: Some(vec!["/root/work".into(), "/data/out".into(), "/usr/share".into()]),
        };
        let plan = plan(&spec, Path::new("/envs/e"), &[], &host, &options).unwrap();
        let ops = targets(&plan);
        for read_only in [
            "bind /home /home ro rec",
            "bind /dev /dev ro rec",
            "bind /proc /proc ro rec",
            "bind /tmp /tmp ro rec",
            "bind /srv/data /data ro rec",
        ] {
            assert!(ops.contains(&read_only.to_owned()), "{read_only}: {ops:#?}");
        }
        assert!(ops.contains(&"tmpfs /dev/shm mode=1777".to_owned()), "{ops:#?}");
        // Secrets wherever they show: /etc through the host's /etc view, /srv/data through the bind.
        for hidden in ["hide /root", "hide /.host-etc/shadow", "hide /data/secret", "hide /srv/data/secret"] {
            assert!(ops.contains(&hidden.to_owned()), "{hidden}: {ops:#?}");
        }
        // The cwd below the hidden /root is shown again, then made writable from where it comes from on the host.
        let at = |op: &str| ops.iter().position(|o| o == op).unwrap_or_else(|| panic!("{op}: {ops:#?}"));
        assert!(at("hide /root") < at("bind /root/work /root/work ro rec"));
        assert!(at("bind /root/work /root/work ro rec") < at("bind /root/work /root/work rw rec optional"));
        assert!(at("bind /srv/data /data ro rec") < at("bind /srv/data/out /data/out rw rec optional"));
        assert_eq!(plan.cwd, Path::new("/root/work"));
        assert!(plan.warnings.iter().any(|w| w.contains("/usr/share")), "{:?}", plan.warnings);
    }

    #[test]
    fn cwd_under_replaced_tree_falls_back_to_root_with_a_warning() {
        let mut host = host();
        host.cwd = "/usr/src/linux".into();
        let plan = plan(&spec(), Path::new("/envs/e"), &[], &host, &PlanOptions::default()).unwrap();
        assert_eq!(plan.cwd, Path::new("/"));
        assert_eq!(plan.warnings.len(), 1);
    }

    #[test]
    fn packages_below_usr_are_refused() {
        let mut spec = spec();
        spec.packages.push("/usr/local/pkgs/x".into());
        let err = plan(&spec, Path::new("/envs/e"), &[], &host(), &PlanOptions::default()).unwrap_err();
        assert!(err.to_string().contains("/usr/local/pkgs"), "{err}");
    }

    #[test]
    fn nested_envs_propagate_the_outer_host_etc() {
        let mut host = host();
        host.nested = true;
        let plan = plan(&spec(), Path::new("/envs/e"), &[], &host, &PlanOptions::default()).unwrap();
        assert!(targets(&plan).contains(&"bind /.host-etc /.host-etc ro".to_owned()));
    }
}
