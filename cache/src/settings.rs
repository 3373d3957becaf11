//! The substitution settings, under Nix's names: the `[cache]` table of `$XDG_CONFIG_HOME/fhskit/config.toml`,
//! then `--option NAME VALUE` (which wins). No cache is configured by default: fhskit names no host of its own.
//!
//! ```toml
//! [cache]
//! substituters = ["http://cache.example:5000", "s3://bucket?region=eu-west-1"]
//! trusted-public-keys = ["cache-1:…"]
//! require-sigs = true
//! narinfo-cache-positive-ttl = 2592000
//! narinfo-cache-negative-ttl = 3600
//! ```

use std::path::{Path, PathBuf};

use crate::error::{CacheError, Result};

/// Everything that governs substitution and cache transfers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Cache URLs, asked in priority order.
    pub substituters: Vec<String>,
    /// `name:base64` public keys whose signatures are accepted.
    pub trusted_public_keys: Vec<String>,
    /// Refuse paths without a valid signature by a trusted key (content-addressed paths are exempt).
    pub require_sigs: bool,
    /// False turns substitution off.
    pub substitute: bool,
    /// Keys whose public halves are trusted too, and that sign paths copied to caches.
    pub secret_key_files: Vec<PathBuf>,
    pub narinfo_cache_positive_ttl: u64,
    pub narinfo_cache_negative_ttl: u64,
    /// Paths downloaded at once.
    pub max_substitution_jobs: usize,
    pub connect_timeout: u64,
    pub download_attempts: u32,
    /// Directory of the narinfo disk cache (`binary-cache-v6.sqlite`); `None` turns it off.
    pub narinfo_cache_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            substituters: Vec::new(),
            trusted_public_keys: Vec::new(),
            require_sigs: true,
            substitute: true,
            secret_key_files: Vec::new(),
            narinfo_cache_positive_ttl: 30 * 24 * 3600,
            narinfo_cache_negative_ttl: 3600,
            max_substitution_jobs: 16,
            connect_timeout: 15,
            download_attempts: 5,
            narinfo_cache_dir: default_cache_dir(),
        }
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(d) => Some(PathBuf::from(d).join("fhskit")),
        None => {
            std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache/fhskit"))
        }
    }
}

fn setting_err(origin: &str, name: &str, reason: impl std::fmt::Display) -> CacheError {
    CacheError::Setting(format!("{origin}: setting '{name}': {reason}"))
}

/// The setting names and their Nix aliases.
const NAMES: &[(&str, &str)] = &[
    ("substituters", "substituters"),
    ("binary-caches", "substituters"),
    ("extra-substituters", "extra-substituters"),
    ("trusted-public-keys", "trusted-public-keys"),
    ("binary-cache-public-keys", "trusted-public-keys"),
    ("extra-trusted-public-keys", "extra-trusted-public-keys"),
    ("require-sigs", "require-sigs"),
    ("substitute", "substitute"),
    ("secret-key-files", "secret-key-files"),
    ("narinfo-cache-positive-ttl", "narinfo-cache-positive-ttl"),
    ("narinfo-cache-negative-ttl", "narinfo-cache-negative-ttl"),
    ("max-substitution-jobs", "max-substitution-jobs"),
    ("substitution-max-jobs", "max-substitution-jobs"),
    ("connect-timeout", "connect-timeout"),
    ("download-attempts", "download-attempts"),
    ("filetransfer-retry-attempts", "download-attempts"),
];

/// True if and only if `name` is a setting this module reads (so `--option` can reject typos).
pub fn is_known(name: &str) -> bool {
    NAMES.iter().any(|(n, _)| *n == name)
}

impl Settings {
    /// Applies one setting given as text (nix.conf syntax: lists are whitespace-separated).
    pub fn set(&mut self, name: &str, value: &str, origin: &str) -> Result<()> {
        let canonical = NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .ok_or_else(|| setting_err(origin, name, "unknown setting"))?;
        let list = || value.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let boolean = || match value.trim() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            v => Err(setting_err(origin, name, format!("'{v}' is not a boolean"))),
        };
        let number = || {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| setting_err(origin, name, format!("'{value}' is not a number")))
        };
        match canonical {
            "substituters" => self.substituters = list(),
            "extra-substituters" => self.substituters.extend(list()),
            "trusted-public-keys" => self.trusted_public_keys = list(),
            "extra-trusted-public-keys" => self.trusted_public_keys.extend(list()),
            "require-sigs" => self.require_sigs = boolean()?,
            "substitute" => self.substitute = boolean()?,
            "secret-key-files" => self.secret_key_files = list().into_iter().map(PathBuf::from).collect(),
            "narinfo-cache-positive-ttl" => self.narinfo_cache_positive_ttl = number()?,
            "narinfo-cache-negative-ttl" => self.narinfo_cache_negative_ttl = number()?,
            "max-substitution-jobs" => self.max_substitution_jobs = number()?.max(1) as usize,
            "connect-timeout" => self.connect_timeout = number()?,
            "download-attempts" => self.download_attempts = number()?.max(1) as u32,
            _ => unreachable!("every canonical name is handled"),
        }
        Ok(())
    }

    /// Reads the `[cache]` table of `config` (absent file: defaults; `explicit` makes absence an error), then
    /// applies `options` in order.
    pub fn load(config: Option<&Path>, explicit: bool, options: &[(String, String)]) -> Result<Settings> {
        let mut s = Settings::default();
        if let Some(path) = config {
            match std::fs::read_to_string(path) {
                Ok(text) => s.apply_toml(&text, &path.display().to_string())?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {}
                Err(e) => return Err(crate::error::io_err("read configuration", path.display())(e)),
            }
        }
        for (name, value) in options {
            s.set(name, value, "--option")?;
        }
        Ok(s)
    }

    fn apply_toml(&mut self, text: &str, origin: &str) -> Result<()> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| CacheError::Setting(format!("{origin}: {}", e.message())))?;
        let Some(section) = table.get("cache") else { return Ok(()) };
        let section = section
            .as_table()
            .ok_or_else(|| CacheError::Setting(format!("{origin}: [cache] must be a table")))?;
        let origin = format!("{origin} [cache]");
        for (name, value) in section {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| setting_err(&origin, name, "list items must be strings"))
                    })
                    .collect::<Result<Vec<_>>>()?
                    .join(" "),
                _ => {
                    return Err(setting_err(
                        &origin,
                        name,
                        "must be a string, number, boolean or list of strings",
                    ));
                }
            };
            self.set(name, &text, &origin)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_then_options() {
        let mut s = Settings::default();
        s.apply_toml("[cache]\nsubstituters = [\"file:///a\", \"http://b\"]\nrequire-sigs = false\nnarinfo-cache-negative-ttl = 0\n", "c.toml").unwrap();
        assert_eq!(s.substituters, ["file:///a", "http://b"]);
        assert!(!s.require_sigs);
        assert_eq!(s.narinfo_cache_negative_ttl, 0);
        s.set("substituters", "", "--option").unwrap();
        assert!(s.substituters.is_empty());
        s.set("extra-substituters", "file:///c", "--option").unwrap();
        assert_eq!(s.substituters, ["file:///c"]);
        let e = s.apply_toml("[cache]\nsubstituterz = []\n", "c.toml").unwrap_err().to_string();
        assert_eq!(e, "c.toml [cache]: setting 'substituterz': unknown setting");
        assert!(s.set("require-sigs", "maybe", "--option").is_err());
    }
}
