//! The search path (`<nixpkgs>`, `-I`, `NIX_PATH`, `builtins.findFile`): matching an entry's prefix, resolving
//! an entry (a directory, or a tarball URL or `channel:` name fetched into the store once and reused for
//! `tarball-ttl` seconds), and `NIX_PATH`'s colon-separated syntax in which URLs keep their colons.

use crate::error::{ErrorKind, EvalError, Result};
use crate::eval::Evaluator;
use crate::io::FileKind;
use crate::source::Pos;

/// Splits `NIX_PATH` at colons, except the colons of a URL (scheme and port) or `channel:` entry (as Nix's
/// `parseNixPath`, which also splits at a port's colon).
pub fn parse_nix_path(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let start = rest;
        let mut i = 0;
        let b = rest.as_bytes();
        let mut value_start = 0;
        while i < b.len() && b[i] != b':' {
            if b[i] == b'=' {
                value_start = i + 1;
            }
            i += 1;
        }
        if i < b.len() && is_pseudo_url(&start[value_start..]) {
            // The entry goes on to the next colon; a URL's authority (`host:port`) is part of it, which Nix's own
            // parser gets wrong.
            i += 1;
            if start[i..].starts_with("//") {
                i += 2;
                while i < b.len() && b[i] != b'/' {
                    i += 1;
                }
            }
            while i < b.len() && b[i] != b':' {
                i += 1;
            }
        }
        if i > 0 {
            out.push(start[..i].to_string());
        }
        rest = if i < b.len() { &start[i + 1..] } else { "" };
    }
    out
}

/// A search path entry that must be downloaded: `channel:NAME` or a URL of a scheme Nix fetches.
pub fn is_pseudo_url(s: &str) -> bool {
    if s.starts_with("channel:") {
        return true;
    }
    match s.find("://") {
        Some(i) => matches!(&s[..i], "http" | "https" | "file" | "channel" | "git" | "s3" | "ssh"),
        None => false,
    }
}

/// The part of `path` below an entry with `prefix`, if the entry can provide it.
fn suffix_for<'a>(prefix: &str, path: &'a str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() { Some("") } else { rest.strip_prefix('/') }
}

impl Evaluator {
    /// Looks `path` (`nixpkgs`, `nixpkgs/lib`, …) up in the evaluator's search path, as `<path>` does.
    pub fn find_file(&mut self, path: &str, pos: Pos) -> Result<String> {
        let entries = self.settings.nix_path.clone();
        self.find_in(&entries, path, pos)
    }

    /// Looks `path` up in `entries` (`(prefix, path)` pairs), then in the fallback entries: the first entry whose
    /// prefix matches and under which the file exists wins; `nix/…` falls back to the built-in files. A miss is an
    /// error `tryEval` can catch.
    pub fn find_in(&mut self, entries: &[(String, String)], path: &str, pos: Pos) -> Result<String> {
        let fallback = self.settings.fallback_nix_path.clone();
        for (prefix, entry) in entries.iter().chain(&fallback) {
            let Some(suffix) = suffix_for(prefix, path) else { continue };
            let Some(root) = self.resolve_entry(entry, pos) else { continue };
            let candidate =
                if suffix.is_empty() { root } else { format!("{}/{suffix}", root.trim_end_matches('/')) };
            let candidate = crate::compile::canon_path(&candidate);
            if let Ok(real) = self.io.canonicalize(&candidate) {
                return Ok(real);
            }
        }
        if let Some(rest) = path.strip_prefix("nix/")
            && crate::builtins::fs::corepkg_exists(rest)
        {
            return Ok(format!("{}{rest}", crate::builtins::fs::COREPKGS));
        }
        let msg = if self.settings.pure {
            format!("cannot look up '<{path}>' in pure evaluation mode (use '--impure' to override)")
        } else {
            format!("file '{path}' was not found in the Nix search path (add it using $NIX_PATH or -I)")
        };
        Err(EvalError::new(ErrorKind::Throw, msg, pos))
    }

    /// Where a search path entry is on disk: a directory as it is, a URL fetched (and cached) into the store.
    /// An entry that cannot be used is skipped with a warning, once per run, as in Nix.
    fn resolve_entry(&mut self, entry: &str, pos: Pos) -> Option<String> {
        if let Some(r) = self.search_path_resolved.get(entry) {
            return r.clone();
        }
        let resolved = if is_pseudo_url(entry) {
            match self.fetch_search_path_url(entry, pos) {
                Ok(p) => Some(p),
                Err(e) => {
                    // Nix's warning, and on the next line why.
                    let msg =
                        format!("Nix search path entry '{entry}' cannot be downloaded, ignoring\n{}", e.msg);
                    self.io.trace(&crate::error::render_warning("warning: ", &msg, Pos::none()));
                    None
                }
            }
        } else if matches!(
            self.io.canonicalize(entry).and_then(|p| self.io.file_kind(&p)),
            Ok(FileKind::Directory | FileKind::Regular { .. })
        ) {
            Some(entry.to_string())
        } else {
            let msg = format!("Nix search path entry '{entry}' does not exist, ignoring");
            self.io.trace(&crate::error::render_warning("warning: ", &msg, Pos::none()));
            None
        };
        self.search_path_resolved.insert(entry.to_string(), resolved.clone());
        resolved
    }

    /// A tarball URL (or `channel:NAME`) of the search path or the command line, unpacked into the store as
    /// `source` and reused for `tarball-ttl` seconds; the store path is returned.
    pub fn fetch_search_path_url(&mut self, url: &str, pos: Pos) -> Result<String> {
        let url = match url.strip_prefix("channel:") {
            Some(name) => {
                let base = self.settings.channel_url.clone().ok_or_else(|| {
                    EvalError::new(
                        ErrorKind::Io,
                        format!(
                            "cannot resolve 'channel:{name}': no channel server is configured (set the \
                             'channel-url' option, or FHSKIT_CHANNEL_URL, to the server's base URL)"
                        ),
                        pos,
                    )
                })?;
                format!("{}/{name}/nixexprs.tar.xz", base.trim_end_matches('/'))
            }
            None => url.to_string(),
        };
        crate::builtins::fs::fetch_tarball_cached(self, &url, "source", None, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_path_keeps_url_colons() {
        assert_eq!(
            parse_nix_path("nixpkgs=https://h/a.tar.gz:foo=/x:/y"),
            ["nixpkgs=https://h/a.tar.gz", "foo=/x", "/y"]
        );
        assert_eq!(parse_nix_path("nixpkgs=channel:nixos-24.05:/z"), ["nixpkgs=channel:nixos-24.05", "/z"]);
        assert_eq!(parse_nix_path("n=http://h:8080/a.tar.gz:/z"), ["n=http://h:8080/a.tar.gz", "/z"]);
        assert_eq!(parse_nix_path("a:b::c"), ["a", "b", "c"]);
        assert_eq!(parse_nix_path(""), Vec::<String>::new());
    }

    #[test]
    fn prefixes_match_whole_components() {
        assert_eq!(suffix_for("nixpkgs", "nixpkgs/lib"), Some("lib"));
        assert_eq!(suffix_for("nixpkgs", "nixpkgs"), Some(""));
        assert_eq!(suffix_for("nixpkgs", "nixpkgs-overlays"), None);
        assert_eq!(suffix_for("", "x/y"), Some("x/y"));
    }
}
