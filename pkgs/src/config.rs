//! Which repositories to read: `[[pkgs.repository]]` tables in `$XDG_CONFIG_HOME/fhskit/config.toml`, `--repo`
//! specifications on the command line, or, when neither names one, the host's apt sources
//! (`/etc/apt/sources.list`, `sources.list.d/*.list` and deb822 `*.sources`).
//!
//! No repository host is built in: every URL comes from the user's configuration or the host.

use std::path::{Path, PathBuf};

use crate::deb822;
use crate::error::{Error, Result, io};

/// Where the OpenPGP keys that sign a repository come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// Keyring files (binary `.gpg` or armored `.asc`), as apt's `Signed-By` names them.
    Files(Vec<PathBuf>),
    /// An armored key block written inline in a deb822 `Signed-By` field.
    Inline(String),
    /// apt's default trust: `/etc/apt/trusted.gpg` and `/etc/apt/trusted.gpg.d/*.{gpg,asc}` under the host root.
    HostTrusted,
}

/// One suite of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Base URL without a trailing slash (the directory holding `dists/` and `pool/`).
    pub url: String,
    pub suite: String,
    pub components: Vec<String>,
    /// Debian architecture names; never empty after loading.
    pub architectures: Vec<String>,
    pub keys: Keys,
    /// Where this entry was read from, for messages.
    pub origin: String,
}

impl Repository {
    /// `url suite`, the short name used in messages and the lock file.
    pub fn label(&self) -> String {
        format!("{} {}", self.url, self.suite)
    }

    /// URL of a file below `dists/<suite>/`.
    pub fn dist_url(&self, rel: &str) -> String {
        format!("{}/dists/{}/{}", self.url, self.suite, rel)
    }

    /// A file-system-safe name for this suite's cache directory, like apt's `lists/` names.
    pub fn cache_key(&self) -> String {
        let raw = format!(
            "{}/dists/{}",
            self.url.split_once("://").map_or(self.url.as_str(), |(_, r)| r),
            self.suite
        );
        raw.chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') { c } else { '_' })
            .collect()
    }
}

/// The Debian name of the architecture this program was built for.
pub fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "riscv64" => "riscv64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64el",
        "s390x" => "s390x",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The package-source settings after reading configuration, command line and host.
#[derive(Debug, Clone)]
pub struct Settings {
    pub repositories: Vec<Repository>,
    /// `$XDG_CACHE_HOME/fhskit` (indexes, `.deb` content cache, lock).
    pub cache_dir: PathBuf,
    /// Root whose `/etc/apt` and `/var/lib/dpkg` describe the host (`/` except in tests and chroots).
    pub host_root: PathBuf,
    /// Architectures indexes are fetched for when a repository names none.
    pub architectures: Vec<String>,
    /// Copy packages the host has installed (same version, md5sums verified) instead of downloading them.
    pub use_host_packages: bool,
}

/// Inputs for [`Settings::load`]; the CLI fills these from its flags and environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The configuration file; `None` means `$XDG_CONFIG_HOME/fhskit/config.toml` (absent is fine).
    pub config_file: Option<PathBuf>,
    /// `--repo` specifications, one-line apt source syntax without the leading `deb`.
    pub repos: Vec<String>,
    pub cache_dir: Option<PathBuf>,
    pub host_root: Option<PathBuf>,
    /// `--arch`: architectures to use for repositories that name none.
    pub architectures: Vec<String>,
}

#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PkgsSection {
    #[serde(default)]
    repository: Vec<RepoEntry>,
    #[serde(default)]
    architectures: Vec<String>,
    host_sources: Option<bool>,
    host_packages: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RepoEntry {
    url: String,
    suite: String,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    architectures: Vec<String>,
    keyring: Option<PathBuf>,
}

fn env_dir(var: &str, home_rel: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(home_rel)),
    }
}

/// `$XDG_CONFIG_HOME/fhskit/config.toml`.
pub fn default_config_file() -> Option<PathBuf> {
    env_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("fhskit/config.toml"))
}

/// `$XDG_CACHE_HOME/fhskit`.
pub fn default_cache_dir() -> PathBuf {
    env_dir("XDG_CACHE_HOME", ".cache").unwrap_or_else(std::env::temp_dir).join("fhskit")
}

impl Settings {
    /// Reads the configuration file, then `--repo`, then (when no repository is named) the host's apt sources.
    pub fn load(opts: &LoadOptions) -> Result<Settings> {
        let host_root = opts.host_root.clone().unwrap_or_else(|| PathBuf::from("/"));
        let cache_dir = opts.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let config_file = opts.config_file.clone().or_else(default_config_file);
        let mut section = PkgsSection::default();
        let mut config_path = PathBuf::new();
        if let Some(path) = config_file {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    section =
                        parse_config(&text).map_err(|reason| Error::Config { path: path.clone(), reason })?;
                    config_path = path;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.config_file.is_none() => {}
                Err(e) => return Err(io("read configuration", &path)(e)),
            }
        }
        let mut architectures = opts.architectures.clone();
        if architectures.is_empty() {
            architectures = section.architectures.clone();
        }
        if architectures.is_empty() {
            architectures.push(native_arch().to_owned());
        }
        let mut repositories = Vec::new();
        for entry in &section.repository {
            let url = entry.url.trim_end_matches('/').to_owned();
            check_url(&url).map_err(|reason| Error::Config { path: config_path.clone(), reason })?;
            repositories.push(Repository {
                url,
                suite: entry.suite.clone(),
                components: if entry.components.is_empty() {
                    vec!["main".into()]
                } else {
                    entry.components.clone()
                },
                architectures: if entry.architectures.is_empty() {
                    architectures.clone()
                } else {
                    entry.architectures.clone()
                },
                keys: entry.keyring.clone().map_or(Keys::HostTrusted, |k| Keys::Files(vec![k])),
                origin: config_path.display().to_string(),
            });
        }
        for spec in &opts.repos {
            let mut repo = parse_one_line(spec, "--repo", &architectures)
                .map_err(|reason| Error::RepoSpec { spec: spec.clone(), reason })?
                .ok_or_else(|| Error::RepoSpec { spec: spec.clone(), reason: "empty".into() })?;
            repo.origin = "--repo".into();
            repositories.push(repo);
        }
        if repositories.is_empty() && section.host_sources.unwrap_or(true) {
            repositories = host_sources(&host_root, &architectures)?;
        }
        Ok(Settings {
            repositories,
            cache_dir,
            host_root,
            architectures,
            use_host_packages: section.host_packages.unwrap_or(true),
        })
    }

    /// The repositories, or [`Error::NoRepository`] when there are none.
    pub fn require_repositories(&self) -> Result<&[Repository]> {
        if self.repositories.is_empty() { Err(Error::NoRepository) } else { Ok(&self.repositories) }
    }
}

fn parse_config(text: &str) -> Result<PkgsSection, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    match table.get("pkgs") {
        None => Ok(PkgsSection::default()),
        Some(value) => {
            value.clone().try_into().map_err(|e: toml::de::Error| format!("[pkgs]: {}", e.message()))
        }
    }
}

fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("repository URL '{url}' must start with http:// or https://"))
    }
}

/// Parses `[opts] URL SUITE COMPONENT…` (the one-line apt format after `deb`). Returns `Ok(None)` for `deb-src`
/// lines and blank lines.
pub fn parse_one_line(
    line: &str,
    origin: &str,
    default_arch: &[String],
) -> Result<Option<Repository>, String> {
    let mut line = line.trim();
    if let Some(hash) = line.find('#') {
        line = line[..hash].trim();
    }
    if line.is_empty() || line.starts_with("deb-src") {
        return Ok(None);
    }
    let line = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t")).unwrap_or(line).trim();
    let (options, rest) = match line.strip_prefix('[') {
        Some(after) => {
            let close = after.find(']').ok_or("unclosed '['")?;
            (&after[..close], after[close + 1..].trim())
        }
        None => ("", line),
    };
    let mut architectures = Vec::new();
    let mut keys = Keys::HostTrusted;
    for opt in options.split_whitespace() {
        let (k, v) = opt.split_once('=').ok_or_else(|| format!("option '{opt}' is not key=value"))?;
        match k {
            "arch" => architectures = v.split(',').map(str::to_owned).collect(),
            "signed-by" => keys = Keys::Files(v.split(',').map(PathBuf::from).collect()),
            _ => tracing::debug!(option = k, "ignoring apt source option"),
        }
    }
    let mut words = rest.split_whitespace();
    let url = words.next().ok_or("missing URL")?.trim_end_matches('/').to_owned();
    check_url(&url)?;
    let suite = words.next().ok_or("missing suite")?.to_owned();
    if suite.ends_with('/') {
        return Err(format!("flat repositories ('{suite}') are not supported"));
    }
    let mut components: Vec<String> = words.map(str::to_owned).collect();
    if components.is_empty() {
        components.push("main".into());
    }
    if architectures.is_empty() {
        architectures = default_arch.to_vec();
    }
    Ok(Some(Repository { url, suite, components, architectures, keys, origin: origin.to_owned() }))
}

/// Reads the host's apt sources under `root`: one-line files first, then deb822 `.sources`, each in name order.
pub fn host_sources(root: &Path, default_arch: &[String]) -> Result<Vec<Repository>> {
    let etc = root.join("etc/apt");
    let mut repos = Vec::new();
    let list = etc.join("sources.list");
    read_list_file(&list, default_arch, &mut repos)?;
    let parts = etc.join("sources.list.d");
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(&parts) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("read apt sources directory", &parts)(e)),
    };
    entries.sort();
    for path in &entries {
        match path.extension().and_then(|e| e.to_str()) {
            Some("list") => read_list_file(path, default_arch, &mut repos)?,
            Some("sources") => read_sources_file(path, default_arch, &mut repos)?,
            _ => {}
        }
    }
    // apt resolves keyrings relative to the real root; under a test root, look there first.
    for repo in &mut repos {
        if let Keys::Files(files) = &mut repo.keys {
            for f in files.iter_mut() {
                if f.is_absolute() && root != Path::new("/") {
                    *f = root.join(f.strip_prefix("/").unwrap_or(f));
                }
            }
        }
    }
    Ok(repos)
}

fn read_list_file(path: &Path, default_arch: &[String], out: &mut Vec<Repository>) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("read apt sources", path)(e)),
    };
    for (n, line) in text.lines().enumerate() {
        let origin = format!("{}:{}", path.display(), n + 1);
        let repo = parse_one_line(line, &origin, default_arch).map_err(|reason| Error::Config {
            path: path.to_owned(),
            reason: format!("line {}: {reason}", n + 1),
        })?;
        out.extend(repo);
    }
    Ok(())
}

fn read_sources_file(path: &Path, default_arch: &[String], out: &mut Vec<Repository>) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(io("read apt sources", path))?;
    for para in deb822::paragraphs(&text) {
        let bad = |reason: String| Error::Config { path: path.to_owned(), reason };
        if para.get("Enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        let types = para.get("Types").unwrap_or("");
        if !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let uris: Vec<&str> =
            para.get("URIs").ok_or_else(|| bad("a stanza has no URIs".into()))?.split_whitespace().collect();
        let suites: Vec<&str> = para
            .get("Suites")
            .ok_or_else(|| bad("a stanza has no Suites".into()))?
            .split_whitespace()
            .collect();
        let components: Vec<String> =
            para.get("Components").unwrap_or("main").split_whitespace().map(str::to_owned).collect();
        let architectures: Vec<String> = para
            .get("Architectures")
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_else(|| default_arch.to_vec());
        let keys = match para.get("Signed-By") {
            None => Keys::HostTrusted,
            Some(v) if v.contains("BEGIN PGP PUBLIC KEY BLOCK") => Keys::Inline(
                // Inline keys are indented and use " ." for empty lines (deb822 continuation rules).
                v.lines().map(|l| if l.trim() == "." { "" } else { l.trim() }).collect::<Vec<_>>().join("\n"),
            ),
            Some(v) => Keys::Files(v.split_whitespace().map(PathBuf::from).collect()),
        };
        for uri in &uris {
            let url = uri.trim_end_matches('/').to_owned();
            check_url(&url).map_err(bad)?;
            for suite in &suites {
                out.push(Repository {
                    url: url.clone(),
                    suite: (*suite).to_owned(),
                    components: components.clone(),
                    architectures: architectures.clone(),
                    keys: keys.clone(),
                    origin: path.display().to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch() -> Vec<String> {
        vec!["amd64".into()]
    }

    #[test]
    fn one_line_sources() {
        let r = parse_one_line(
            "deb [arch=amd64,i386 signed-by=/k.gpg] http://127.0.0.1:8080/debian/ testing main contrib # c",
            "t",
            &arch(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.url, "http://127.0.0.1:8080/debian");
        assert_eq!(r.suite, "testing");
        assert_eq!(r.components, ["main", "contrib"]);
        assert_eq!(r.architectures, ["amd64", "i386"]);
        assert_eq!(r.keys, Keys::Files(vec![PathBuf::from("/k.gpg")]));
        assert!(parse_one_line("deb-src http://x/ y main", "t", &arch()).unwrap().is_none());
        assert!(parse_one_line("ftp://x y", "t", &arch()).is_err());
        assert!(parse_one_line("http://x ./", "t", &arch()).is_err());
    }

    #[test]
    fn host_sources_read_list_and_deb822() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("etc/apt/sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            root.path().join("etc/apt/sources.list"),
            "# none\ndeb http://127.0.0.1:1/a one main\n",
        )
        .unwrap();
        std::fs::write(
            d.join("x.sources"),
            "Types: deb deb-src\nURIs: http://127.0.0.1:2/b\nSuites: s1 s1-updates\nComponents: main non-free\n\
             Signed-By: /usr/share/keyrings/k.gpg\n\nTypes: deb\nURIs: http://127.0.0.1:3/c\nSuites: s2\nEnabled: no\n",
        )
        .unwrap();
        let repos = host_sources(root.path(), &arch()).unwrap();
        assert_eq!(repos.len(), 3);
        assert_eq!(repos[0].suite, "one");
        assert_eq!(repos[2].suite, "s1-updates");
        assert_eq!(repos[1].keys, Keys::Files(vec![root.path().join("usr/share/keyrings/k.gpg")]));
    }

    #[test]
    fn config_file_repositories() {
        let s = parse_config(
            "[store]\nx = 1\n[pkgs]\narchitectures = [\"amd64\", \"i386\"]\n[[pkgs.repository]]\nurl = \"http://127.0.0.1:8080/debian\"\nsuite = \"testing\"\nkeyring = \"/k.gpg\"\n",
        )
        .unwrap();
        assert_eq!(s.repository.len(), 1);
        assert_eq!(s.architectures, ["amd64", "i386"]);
        assert!(parse_config("[pkgs]\nbogus = 1\n").is_err());
    }
}
