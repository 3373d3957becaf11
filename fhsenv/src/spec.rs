//! The environment declaration (`EnvSpec`): what goes into an FHS env and how it is entered.
//!
//! Loaded from `env.toml` (unknown keys are errors, relative paths are relative to the file) or built in code by
//! the evaluator and `fhskit run`. The builder (`tree`) reads the package lists; the launcher (`plan`, `launch`) reads
//! the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A declared FHS environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvSpec {
    /// Name of the env; shown in the shell prompt and used for the build directory.
    pub name: String,
    /// Package directories (trees like an unpacked .deb: `usr/lib/…`, `bin/…`), 64-bit roots. Earlier wins.
    pub packages: Vec<PathBuf>,
    /// Package directories that also provide 32-bit libraries (their `lib32`/`i386-linux-gnu` halves).
    pub multi_packages: Vec<PathBuf>,
    /// The command run by `env enter` and by `env run` without a command.
    pub run: Vec<String>,
    /// Shell text appended to the generated `/etc/profile`; when set, `run` starts through `/bin/sh` to source it.
    pub profile: String,
    /// Extra environment variables set inside (after the FHS defaults).
    pub env: BTreeMap<String, String>,
    /// Extra host paths bound into the env.
    pub bind: Vec<BindSpec>,
    /// A store directory bound read-only at its own path (package symlinks may point into it).
    pub store_dir: Option<PathBuf>,
    /// Optional namespaces besides user and mount (always unshared).
    pub unshare: UnshareSpec,
    /// A fresh tmpfs at `/tmp` instead of the host's.
    pub private_tmp: bool,
    /// Terminate the whole process tree (TERM, then KILL) when the caller of fhskit dies.
    pub die_with_parent: bool,
    /// How `/usr` is provided: replaced by the env (`nixos`) or the env overlaid on the host's (`overlay`).
    pub mode: Mode,
    /// Allow nested containers inside (bwrap, pressure-vessel, another fhsenv); incompatible with `sandbox`.
    pub nested: bool,
    /// Opt-in Landlock sandbox.
    pub sandbox: Option<SandboxSpec>,
    /// Also link documentation (`usr/share/{doc,man,info}`); left out by default, as Nix keeps it in outputs an
    /// env does not include (in a 200-package env it would be three quarters of the links).
    pub docs: bool,
}

impl Default for EnvSpec {
    fn default() -> Self {
        EnvSpec {
            name: "fhsenv".to_owned(),
            packages: Vec::new(),
            multi_packages: Vec::new(),
            run: vec!["bash".to_owned()],
            profile: String::new(),
            env: BTreeMap::new(),
            bind: Vec::new(),
            store_dir: None,
            unshare: UnshareSpec::default(),
            private_tmp: false,
            die_with_parent: true,
            mode: Mode::Nixos,
            nested: false,
            sandbox: None,
            docs: false,
        }
    }
}

/// Optional namespaces; user and mount namespaces are always created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnshareSpec {
    /// New pid namespace with a reaping init as PID 1 and a fresh `/proc`.
    pub pid: bool,
    /// New network namespace (loopback only, brought up).
    pub net: bool,
    /// New System V IPC / POSIX message queue namespace.
    pub ipc: bool,
    /// New hostname namespace.
    pub uts: bool,
    /// New cgroup namespace.
    pub cgroup: bool,
}

/// An extra host path made visible inside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindSpec {
    /// Host path (`~` expands to `$HOME`).
    pub source: PathBuf,
    /// Path inside; defaults to `source`.
    #[serde(default)]
    pub target: Option<PathBuf>,
    /// Bind read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Skip silently when the source does not exist.
    #[serde(default)]
    pub optional: bool,
}

/// How the env's `/usr` meets the host's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The env replaces `/usr`, `/bin`, `/lib*` (what NixOS needs: the host has no FHS tree).
    #[default]
    Nixos,
    /// An overlayfs of the env over the host's `/usr`, for FHS hosts whose own tools must keep working.
    Overlay,
}

/// The sandbox: the host read-only (mounts and Landlock), secrets hidden, the program without capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSpec {
    /// Directories that stay writable (`~` and `.` expand); everything else is read-only.
    pub writable: Vec<PathBuf>,
    /// Host paths hidden: a directory behind an empty tmpfs, a file behind an empty file (`~` and `.` expand).
    pub hide: Vec<PathBuf>,
    /// Host secrets hidden by default ([`SECRETS`]) that stay readable (as written there, e.g. `/etc/ssh`).
    pub read: Vec<PathBuf>,
    /// Network policy.
    pub network: Network,
    /// TCP ports that may be connected to when `network = "ports"`.
    pub tcp_connect: Vec<u16>,
    /// TCP ports that may be bound when `network = "ports"`.
    pub tcp_bind: Vec<u16>,
    /// Fail instead of degrading when the kernel cannot enforce everything.
    pub strict: bool,
}

/// Host paths a sandbox hides besides its `hide` list, unless its `read` list names them: root's home, password
/// hashes, sudo rules and private keys of the system. A `*` in the last component matches names in that directory.
pub const SECRETS: [&str; 9] = [
    "/root",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh/ssh_host_*_key",
    "/etc/ssl/private",
];

impl Default for SandboxSpec {
    fn default() -> Self {
        SandboxSpec {
            writable: vec![PathBuf::from(".")],
            hide: vec![PathBuf::from("~/.ssh"), PathBuf::from("~/.gnupg")],
            read: Vec::new(),
            network: Network::Host,
            tcp_connect: Vec::new(),
            tcp_bind: Vec::new(),
            strict: false,
        }
    }
}

/// Network policy of the sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No restriction.
    #[default]
    Host,
    /// No TCP connect or bind at all.
    None,
    /// Only the listed TCP ports.
    Ports,
}

impl EnvSpec {
    /// Reads and validates an `env.toml`; relative package and bind paths are taken relative to its directory.
    pub fn load(path: &Path) -> Result<EnvSpec> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "read env spec",
            path: path.into(),
            source,
        })?;
        let mut spec = EnvSpec::parse(&text, path)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        spec.resolve_relative(&base);
        Ok(spec)
    }

    /// Parses spec text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<EnvSpec> {
        let spec: EnvSpec = toml::from_str(text).map_err(|err| {
            let (line, key) = err.span().map(|span| locate(text, span.start)).unwrap_or((0, None));
            let mut message = err.message().trim().replace('\n', " ");
            if let Some(key) =
                key.filter(|k| !message.contains(&format!("`{}`", k.rsplit('.').next().unwrap_or(k))))
            {
                message = format!("key `{key}`: {message}");
            }
            Error::Spec { path: origin.into(), line, message }
        })?;
        spec.validate(origin)?;
        Ok(spec)
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |line: usize, message: String| Err(Error::Spec { path: origin.into(), line, message });
        if self.name.is_empty() || self.name.contains('/') || self.name.starts_with('.') {
            return bad(0, format!("key `name`: {:?} is not a usable env name", self.name));
        }
        if self.packages.is_empty() && self.multi_packages.is_empty() {
            return bad(0, "key `packages`: the env declares no packages".to_owned());
        }
        if self.run.is_empty() {
            return bad(0, "key `run`: the run command is empty".to_owned());
        }
        if self.sandbox.is_some() && self.nested {
            return bad(0, "key `sandbox`: a Landlock sandbox cannot be combined with `nested = true` (a landlocked process cannot change mount topology, so nested containers would fail)".to_owned());
        }
        Ok(())
    }

    fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.starts_with("~") {
                *p = base.join(&*p);
            }
        };
        self.packages.iter_mut().for_each(fix);
        self.multi_packages.iter_mut().for_each(fix);
        self.bind.iter_mut().for_each(|b| fix(&mut b.source));
        if let Some(store) = self.store_dir.as_mut() {
            fix(store);
        }
    }

    /// All package directories in priority order (native packages first, then multi-arch ones).
    pub fn all_packages(&self) -> impl Iterator<Item = (&Path, bool)> {
        self.packages
            .iter()
            .map(|p| (p.as_path(), false))
            .chain(self.multi_packages.iter().map(|p| (p.as_path(), true)))
    }
}

/// Line number (1-based) of a byte offset and the dotted key being defined on that line, if any.
fn locate(text: &str, offset: usize) -> (usize, Option<String>) {
    let before = &text[..offset.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let mut table = None;
    for previous in before.lines().rev() {
        let t = previous.trim();
        if t.starts_with('[') {
            table = Some(t.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
            break;
        }
    }
    let key =
        line.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_owned()).filter(|k| !k.is_empty());
    let key = match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    };
    (line_no, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_spec() {
        let text = r#"
name = "dev"
packages = ["pkgs/a", "/abs/b"]
multi_packages = ["pkgs/m"]
run = ["bash", "-l"]
profile = "export X=1"
private_tmp = true
die_with_parent = false
mode = "overlay"
[env]
FOO = "bar"
[unshare]
pid = true
net = true
[[bind]]
source = "/data"
read_only = true
[sandbox]
writable = ["~/work"]
network = "ports"
tcp_connect = [443]
"#;
        let mut spec = EnvSpec::parse(text, Path::new("env.toml")).unwrap();
        spec.resolve_relative(Path::new("/base"));
        assert_eq!(spec.packages, [PathBuf::from("/base/pkgs/a"), PathBuf::from("/abs/b")]);
        assert_eq!(spec.mode, Mode::Overlay);
        assert!(spec.unshare.pid && spec.unshare.net && !spec.unshare.ipc);
        assert_eq!(spec.env["FOO"], "bar");
        let sandbox = spec.sandbox.unwrap();
        assert_eq!(sandbox.network, Network::Ports);
        assert_eq!(sandbox.tcp_connect, [443]);
        assert_eq!(sandbox.hide, [PathBuf::from("~/.ssh"), PathBuf::from("~/.gnupg")]);
        assert!(!spec.die_with_parent);
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let err =
            EnvSpec::parse("name = \"x\"\npakages = []\n", Path::new("/e/env.toml")).unwrap_err().to_string();
        assert!(err.contains("/e/env.toml") && err.contains("pakages") && err.contains("line 2"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn wrong_type_names_the_dotted_key() {
        let err = EnvSpec::parse("packages = [\"/a\"]\n[unshare]\npid = \"yes\"\n", Path::new("env.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unshare.pid") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn sandbox_and_nested_are_refused() {
        let err = EnvSpec::parse("packages = [\"/a\"]\nnested = true\n[sandbox]\n", Path::new("env.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn empty_package_list_is_refused() {
        assert!(EnvSpec::parse("name = \"x\"\n", Path::new("env.toml")).is_err());
    }
}
