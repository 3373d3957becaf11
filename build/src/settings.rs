//! The builder's settings, named as Nix names them (`max-jobs`, `sandbox`, `keep-failed`, …, with Nix's old aliases
//! and `extra-` forms of list settings), with Nix's defaults, set from `nix.conf`-style text ([`parse_conf`]) and
//! `--option NAME VALUE`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{BuildError, Result};

/// Whether builds run in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Every build (the default).
    On,
    /// No build (with a warning: builds see the whole host).
    Off,
    /// Only derivations that are not fixed-output and do not set `__noChroot`.
    Relaxed,
}

/// One `sandbox-paths` entry: `target=source`, `path` (both the same), with a trailing `?` when optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPath {
    /// Where it appears inside.
    pub target: PathBuf,
    /// The host path.
    pub source: PathBuf,
    /// Skipped silently when the source does not exist.
    pub optional: bool,
}

impl SandboxPath {
    /// Parses `target=source`, `path`, either with a trailing `?`.
    pub fn parse(entry: &str) -> Result<SandboxPath> {
        let (entry, optional) = match entry.strip_suffix('?') {
            Some(e) => (e, true),
            None => (entry, false),
        };
        let (target, source) = entry.split_once('=').unwrap_or((entry, entry));
        if !target.starts_with('/') || !source.starts_with('/') {
            return Err(BuildError::Setting {
                name: "sandbox-paths".into(),
                reason: format!("'{entry}' must be an absolute path or target=source with absolute paths"),
            });
        }
        Ok(SandboxPath { target: target.into(), source: source.into(), optional })
    }
}

/// Everything that changes how derivations are built. [`Settings::default`] gives Nix's defaults, except where noted.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `max-jobs`: builds run at once (0: only builtin builders run locally).
    pub max_jobs: usize,
    /// `cores`: the builder's `NIX_BUILD_CORES`; 0 means every CPU.
    pub cores: usize,
    pub sandbox: SandboxMode,
    /// `sandbox-fallback`: build unsandboxed (with a warning) where namespaces are unavailable.
    pub sandbox_fallback: bool,
    /// `sandbox-paths`: host paths visible in every sandbox (`/bin/sh`). Default: `/bin/sh` from a static busybox
    /// when the host has one (Nix builds its default from its own static shell).
    pub sandbox_paths: Vec<SandboxPath>,
    /// `sandbox-build-dir`: the build directory as the builder sees it.
    pub sandbox_build_dir: PathBuf,
    /// `build-dir`: where build directories are made on the host (default: `<state>/builds`).
    pub build_dir: Option<PathBuf>,
    pub keep_failed: bool,
    pub keep_going: bool,
    /// `max-silent-time` in seconds (0: none).
    pub max_silent_time: u64,
    /// `timeout` in seconds (0: none).
    pub timeout: u64,
    /// `max-log-size` in bytes (0: none).
    pub max_log_size: u64,
    /// `log-lines`: lines of log shown when a build fails.
    pub log_lines: usize,
    /// `compress-build-log`: keep logs as bzip2, as Nix does.
    pub compress_build_log: bool,
    pub keep_outputs: bool,
    pub keep_derivations: bool,
    pub system: String,
    pub extra_platforms: BTreeSet<String>,
    pub system_features: BTreeSet<String>,
    /// `build-users-group`: as root, builds run as members of this group (Nix's `nixbld`); when it does not exist
    /// (or is empty), as root, builds run as uids from 872415232 up, one per build at a time (Nix's
    /// `auto-allocate-uids` range).
    pub build_users_group: String,
    /// `build-poll-interval`: how often a build waiting for another process's lock tries again.
    pub poll_interval: Duration,
    /// `hashed-mirrors`: tried first by `builtin:fetchurl` for flat fixed outputs.
    pub hashed_mirrors: Vec<String>,
    /// `substitute`: ask the substituter before building.
    pub substitute: bool,
    /// `allow-new-privileges`: leave `no_new_privs` off (setuid programs work inside).
    pub allow_new_privileges: bool,
    /// `landlock` (fhskit): restrict sandboxed builders with Landlock too, where the kernel has it.
    pub landlock: bool,
}

fn host_system() -> String {
    let arch = match std::env::consts::ARCH {
        "x86" => "i686",
        a => a,
    };
    format!("{arch}-linux")
}

fn default_extra_platforms() -> BTreeSet<String> {
    match std::env::consts::ARCH {
        "x86_64" => BTreeSet::from(["i686-linux".to_owned()]),
        _ => BTreeSet::new(),
    }
}

/// The first statically linked busybox found on the host, for `/bin/sh` in the sandbox.
fn static_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| is_static_elf(p))
}

/// Returns true if and only if `path` is a little-endian ELF file without a program interpreter (`PT_INTERP`), so
/// that it runs in a sandbox holding nothing else.
pub fn is_static_elf(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(f) = std::fs::File::open(path) else { return false };
    let mut h = [0u8; 64];
    if f.read_exact_at(&mut h, 0).is_err() || &h[..4] != b"\x7fELF" || h[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as u64;
    let (phoff, phentsize, phnum) = match h[4] {
        1 => (u32::from_le_bytes(h[28..32].try_into().unwrap_or_default()) as u64, u16_at(42), u16_at(44)),
        2 => (u64::from_le_bytes(h[32..40].try_into().unwrap_or_default()), u16_at(54), u16_at(56)),
        _ => return false,
    };
    (0..phnum).all(|i| {
        let mut t = [0u8; 4];
        f.read_exact_at(&mut t, phoff + i * phentsize).is_ok() && u32::from_le_bytes(t) != 3
    })
}

impl Default for Settings {
    fn default() -> Settings {
        let sandbox_paths = static_busybox()
            .map(|b| vec![SandboxPath { target: "/bin/sh".into(), source: b, optional: false }])
            .unwrap_or_default();
        Settings {
            max_jobs: 1,
            cores: 0,
            sandbox: SandboxMode::On,
            sandbox_fallback: true,
            sandbox_paths,
            sandbox_build_dir: "/build".into(),
            build_dir: None,
            keep_failed: false,
            keep_going: false,
            max_silent_time: 0,
            timeout: 0,
            max_log_size: 0,
            log_lines: 10,
            compress_build_log: true,
            keep_outputs: false,
            keep_derivations: true,
            system: host_system(),
            extra_platforms: default_extra_platforms(),
            system_features: ["nixos-test", "benchmark", "big-parallel"].map(String::from).into(),
            build_users_group: "nixbld".into(),
            poll_interval: Duration::from_secs(1),
            hashed_mirrors: Vec::new(),
            substitute: true,
            allow_new_privileges: false,
            landlock: true,
        }
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(BuildError::Setting { name: name.into(), reason: format!("'{value}' is not a Boolean") }),
    }
}

fn parse_u64(name: &str, value: &str) -> Result<u64> {
    value
        .parse()
        .map_err(|_| BuildError::Setting { name: name.into(), reason: format!("'{value}' is not a number") })
}

fn words(value: &str) -> impl Iterator<Item = &str> {
    value.split_whitespace()
}

impl Settings {
    /// The number of CPUs the builder gets (`cores`, or every CPU when 0).
    pub fn effective_cores(&self) -> usize {
        if self.cores > 0 {
            return self.cores;
        }
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }

    /// Sets a setting by its Nix name (or an alias, or `extra-NAME` to append to a list). Returns false for a name
    /// the builder does not know (the caller may know it, or warns `unknown setting`).
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool> {
        let (base, extra) = match name.strip_prefix("extra-") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let value = value.trim();
        match base {
            "max-jobs" | "build-max-jobs" => {
                self.max_jobs = if value == "auto" {
                    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
                } else {
                    parse_u64(name, value)? as usize
                }
            }
            "cores" | "build-cores" => self.cores = parse_u64(name, value)? as usize,
            "sandbox" | "build-use-sandbox" | "build-use-chroot" => {
                self.sandbox = match value {
                    "relaxed" => SandboxMode::Relaxed,
                    v => {
                        if parse_bool(name, v)? {
                            SandboxMode::On
                        } else {
                            SandboxMode::Off
                        }
                    }
                }
            }
            "sandbox-fallback" => self.sandbox_fallback = parse_bool(name, value)?,
            "sandbox-paths" | "build-chroot-dirs" | "build-sandbox-paths" => {
                let parsed: Vec<SandboxPath> = words(value).map(SandboxPath::parse).collect::<Result<_>>()?;
                if extra {
                    self.sandbox_paths.extend(parsed);
                } else {
                    self.sandbox_paths = parsed;
                }
            }
            "sandbox-build-dir" => {
                if !value.starts_with('/') {
                    return Err(BuildError::Setting {
                        name: name.into(),
                        reason: "must be an absolute path".into(),
                    });
                }
                self.sandbox_build_dir = value.into();
            }
            "build-dir" => self.build_dir = (!value.is_empty()).then(|| PathBuf::from(value)),
            "keep-failed" => self.keep_failed = parse_bool(name, value)?,
            "keep-going" => self.keep_going = parse_bool(name, value)?,
            "max-silent-time" | "build-max-silent-time" => self.max_silent_time = parse_u64(name, value)?,
            "timeout" | "build-timeout" => self.timeout = parse_u64(name, value)?,
            "max-log-size" | "build-max-log-size" => self.max_log_size = parse_u64(name, value)?,
            "log-lines" => self.log_lines = parse_u64(name, value)? as usize,
            "compress-build-log" | "build-compress-log" => self.compress_build_log = parse_bool(name, value)?,
            "keep-outputs" | "gc-keep-outputs" => self.keep_outputs = parse_bool(name, value)?,
            "keep-derivations" | "gc-keep-derivations" => self.keep_derivations = parse_bool(name, value)?,
            "system" => self.system = value.to_owned(),
            "platforms" | "extra-platforms" if base == "platforms" && !extra => return Ok(false),
            "platforms" => self.extra_platforms.extend(words(value).map(String::from)),
            "system-features" => {
                if !extra {
                    self.system_features.clear();
                }
                self.system_features.extend(words(value).map(String::from));
            }
            "build-users-group" => self.build_users_group = value.to_owned(),
            "build-poll-interval" => self.poll_interval = Duration::from_secs(parse_u64(name, value)?.max(1)),
            "hashed-mirrors" => {
                if !extra {
                    self.hashed_mirrors.clear();
                }
                self.hashed_mirrors.extend(words(value).map(String::from));
            }
            "substitute" | "build-use-substitutes" => self.substitute = parse_bool(name, value)?,
            "allow-new-privileges" => self.allow_new_privileges = parse_bool(name, value)?,
            "landlock" => self.landlock = parse_bool(name, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Parses `nix.conf` text: `name = value` lines, `#` comments, blank lines; `include`/`!include` lines are returned
/// as `("include", path)` / `("!include", path)` for the caller to follow.
pub fn parse_conf(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("!include").or_else(|| line.strip_prefix("include")) {
            let kind = if line.starts_with('!') { "!include" } else { "include" };
            out.push((kind.to_owned(), rest.trim().to_owned()));
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(BuildError::Setting {
                name: format!("line {}", n + 1),
                reason: format!("expected 'name = value', found '{line}'"),
            });
        };
        out.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_extra() {
        let mut s = Settings::default();
        assert!(s.set("max-jobs", "4").unwrap());
        assert_eq!(s.max_jobs, 4);
        assert!(s.set("build-use-sandbox", "relaxed").unwrap());
        assert_eq!(s.sandbox, SandboxMode::Relaxed);
        assert!(s.set("sandbox-paths", "/bin/sh=/x/busybox /usr/bin/env?").unwrap());
        assert_eq!(s.sandbox_paths.len(), 2);
        assert!(s.sandbox_paths[1].optional);
        assert!(s.set("extra-sandbox-paths", "/etc/ssl").unwrap());
        assert_eq!(s.sandbox_paths.len(), 3);
        assert!(s.set("gc-keep-outputs", "true").unwrap());
        assert!(s.keep_outputs);
        assert!(s.set("extra-platforms", "aarch64-linux").unwrap());
        assert!(s.extra_platforms.contains("aarch64-linux"));
        assert!(!s.set("no-such-setting", "1").unwrap());
        assert!(s.set("keep-failed", "maybe").is_err());
    }

    #[test]
    fn conf_text() {
        let c = parse_conf("# comment\nkeep-outputs = true\n\nsandbox = false # trailing\ninclude /x.conf\n")
            .unwrap();
        assert_eq!(
            c,
            [
                ("keep-outputs".to_owned(), "true".to_owned()),
                ("sandbox".to_owned(), "false".to_owned()),
                ("include".to_owned(), "/x.conf".to_owned())
            ]
        );
        assert!(parse_conf("what").is_err());
    }
}
