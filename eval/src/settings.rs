//! The settings of one evaluation, by the names Nix gives them (`--option NAME VALUE`, `--NAME VALUE`): the store
//! directory, the search path, purity, the experimental features the language knows, the lints on path and URL
//! literals, the call-depth limit and the tarball cache's time to live. `cli` fills them from its arguments;
//! `compile`, `eval` and the builtins read them.

use std::collections::BTreeSet;

/// How a lint reports what it finds (`lint-absolute-path-literals = warn`, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LintLevel {
    #[default]
    Ignore,
    Warn,
    Fatal,
}

impl LintLevel {
    fn parse(value: &str) -> Option<LintLevel> {
        match value {
            "ignore" | "false" | "" => Some(LintLevel::Ignore),
            "warn" | "true" => Some(LintLevel::Warn),
            "fatal" => Some(LintLevel::Fatal),
            _ => None,
        }
    }
}

/// Settings of one evaluation.
#[derive(Clone, Debug)]
pub struct Settings {
    pub store_dir: String,
    pub system: String,
    /// Search path entries `(prefix, path)`; an empty prefix matches every lookup.
    pub nix_path: Vec<(String, String)>,
    /// Entries every lookup (`<…>`, `findFile`) tries after the search path it was given, as the built-in
    /// `<nix/…>` files are: the embedder's defaults (fhskit's own package set as `nixpkgs`). They are not part of
    /// `builtins.nixPath`, which lists what the user set.
    pub fallback_nix_path: Vec<(String, String)>,
    /// `pure-eval`: no `currentTime`, `currentSystem`, `getEnv` or unlocked fetches.
    pub pure: bool,
    pub current_time: i64,
    /// `--eval` mode writes nothing to the store (as `nix-instantiate --eval`); instantiate mode writes `.drv`s.
    pub read_only: bool,
    /// Enabled experimental features: the evaluator knows `pipe-operators`, `parse-toml-timestamps` and `flakes`
    /// (the flake reference builtins); others are accepted and change nothing.
    pub features: BTreeSet<String>,
    /// Function calls nested deeper than this fail with "stack overflow; max-call-depth exceeded".
    pub max_call_depth: usize,
    pub lint_absolute_paths: LintLevel,
    pub lint_short_paths: LintLevel,
    pub lint_url_literals: LintLevel,
    /// `abort-on-warn`: the first warning is an error.
    pub abort_on_warn: bool,
    /// `trace-verbose`: `builtins.traceVerbose` prints.
    pub trace_verbose: bool,
    /// How long a downloaded tarball or file is reused without asking the server again, in seconds.
    pub tarball_ttl: u64,
    /// The base URL `channel:NAME` search path entries are resolved under (`BASE/NAME/nixexprs.tar.xz`).
    pub channel_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            store_dir: "/nix/store".to_string(),
            system: "x86_64-linux".to_string(),
            nix_path: Vec::new(),
            fallback_nix_path: Vec::new(),
            pure: false,
            current_time: 0,
            read_only: true,
            features: BTreeSet::new(),
            max_call_depth: 10_000,
            lint_absolute_paths: LintLevel::Ignore,
            lint_short_paths: LintLevel::Ignore,
            lint_url_literals: LintLevel::Ignore,
            abort_on_warn: false,
            trace_verbose: false,
            tarball_ttl: 3600,
            channel_url: None,
        }
    }
}

impl Settings {
    pub fn feature(&self, name: &str) -> bool {
        self.features.contains(name)
    }

    /// Sets `name` to `value` as `--option name value` does. `Ok(false)`: not a setting of the evaluator (the
    /// caller warns "unknown setting", as Nix does); `Err`: a known setting with a value it cannot take.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, String> {
        let bad = |what: &str| format!("invalid value '{value}' for setting '{name}': expected {what}");
        let boolean = || match value {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(bad("a Boolean")),
        };
        let lint = || LintLevel::parse(value).ok_or_else(|| bad("'ignore', 'warn' or 'fatal'"));
        match name {
            "max-call-depth" => self.max_call_depth = value.parse().map_err(|_| bad("an integer"))?,
            "lint-absolute-path-literals" => self.lint_absolute_paths = lint()?,
            "lint-short-path-literals" => self.lint_short_paths = lint()?,
            "lint-url-literals" => self.lint_url_literals = lint()?,
            "abort-on-warn" => self.abort_on_warn = boolean()?,
            "pure-eval" => self.pure = boolean()?,
            "trace-verbose" => self.trace_verbose = boolean()?,
            "tarball-ttl" => self.tarball_ttl = value.parse().map_err(|_| bad("an integer"))?,
            "system" => self.system = value.to_string(),
            "channel-url" => self.channel_url = Some(value.to_string()).filter(|v| !v.is_empty()),
            "experimental-features" => {
                self.features = value.split_whitespace().map(str::to_string).collect();
            }
            "extra-experimental-features" => {
                self.features.extend(value.split_whitespace().map(str::to_string));
            }
            "nix-path" => {
                self.nix_path = value.split_whitespace().map(split_entry).collect();
            }
            "extra-nix-path" => self.nix_path.extend(value.split_whitespace().map(split_entry)),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `prefix=path` or a bare `path` (empty prefix), as in `NIX_PATH` and `-I`.
pub fn split_entry(entry: &str) -> (String, String) {
    // A URL's own `=` (in a query) must not split it: only a prefix before the first `=` that looks like a name.
    match entry.split_once('=') {
        Some((prefix, path)) if !prefix.contains('/') && !prefix.contains(':') => {
            (prefix.to_string(), path.to_string())
        }
        _ => (String::new(), entry.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_by_name() {
        let mut s = Settings::default();
        assert_eq!(s.set("lint-url-literals", "fatal"), Ok(true));
        assert_eq!(s.lint_url_literals, LintLevel::Fatal);
        assert_eq!(s.set("max-call-depth", "100"), Ok(true));
        assert_eq!(s.max_call_depth, 100);
        assert!(s.set("max-call-depth", "many").is_err());
        assert_eq!(s.set("extra-experimental-features", "pipe-operators flakes"), Ok(true));
        assert!(s.feature("pipe-operators") && s.feature("flakes"));
        assert_eq!(s.set("no-such-setting", "x"), Ok(false));
    }

    #[test]
    fn search_path_entries() {
        assert_eq!(split_entry("nixpkgs=/src"), ("nixpkgs".into(), "/src".into()));
        assert_eq!(split_entry("/src"), ("".into(), "/src".into()));
        assert_eq!(
            split_entry("nixpkgs=https://h/x.tar.gz?a=b"),
            ("nixpkgs".into(), "https://h/x.tar.gz?a=b".into())
        );
        assert_eq!(split_entry("https://h/x.tar.gz?a=b"), ("".into(), "https://h/x.tar.gz?a=b".into()));
    }
}
