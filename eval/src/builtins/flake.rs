//! Flake references (`parseFlakeRef`, `flakeRefToString`; Nix offers them with the `flakes` experimental
//! feature): the URL forms `github:`/`gitlab:`/`sourcehut:`, `path:` and absolute paths, `git+…`/`hg+…`,
//! tarball and file URLs, and indirect references (`nixpkgs`, `flake:nixpkgs/branch`), to and from the attribute
//! sets Nix uses for them. Nothing is fetched.

use super::mk_attrs;
use crate::error::{EvalError, Result};
use crate::eval::Evaluator;
use crate::source::Pos;
use crate::value::{PrimFn, Value};

pub(crate) fn table(t: &mut Vec<(&'static str, usize, PrimFn)>) {
    t.extend_from_slice(&[
        ("parseFlakeRef", 1, prim_parse_flake_ref as PrimFn),
        ("flakeRefToString", 1, prim_to_string),
    ]);
}

/// One attribute of a flake reference.
#[derive(Clone, Debug, PartialEq)]
enum Attr {
    Str(String),
    Int(u64),
    Bool(bool),
}

type Attrs = std::collections::BTreeMap<String, Attr>;

fn bad(msg: String, p: Pos) -> EvalError {
    EvalError::eval(msg, p)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes what a URL query value may not contain, as Nix's `encodeQuery` does.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Attributes whose query values are integers or Booleans in Nix's attribute form.
fn typed(name: &str, value: String) -> Attr {
    match name {
        "lastModified" | "revCount" => value.parse().map_or(Attr::Str(value), Attr::Int),
        "submodules" | "shallow" | "lfs" | "exportIgnore" | "allRefs" | "verifyTls" => {
            Attr::Bool(value == "1" || value == "true")
        }
        _ => Attr::Str(value),
    }
}

fn is_rev(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses a flake reference into its attributes (with `dir` for a subdirectory).
fn parse(s: &str, p: Pos) -> Result<Attrs> {
    let (main, query) = match s.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (s, None),
    };
    let main = main.split('#').next().unwrap_or(main);
    let mut attrs = Attrs::new();
    let mut params: Vec<(String, String)> = Vec::new();
    for kv in query.into_iter().flat_map(|q| q.split('&')).filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        params.push((percent_decode(k), percent_decode(v)));
    }
    let invalid = || bad(format!("'{s}' is not a valid flake reference"), p);
    if let Some((scheme, rest)) = main.split_once(':')
        && matches!(scheme, "github" | "gitlab" | "sourcehut")
    {
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|x| x.is_empty()) {
            return Err(bad(format!("'{s}' is not a valid URL"), p));
        }
        attrs.insert("type".into(), Attr::Str(scheme.into()));
        attrs.insert("owner".into(), Attr::Str(parts[0].into()));
        attrs.insert("repo".into(), Attr::Str(parts[1].into()));
        if let Some(r) = parts.get(2) {
            let key = if is_rev(r) { "rev" } else { "ref" };
            attrs.insert(key.into(), Attr::Str((*r).into()));
        }
    } else if let Some(rest) = main.strip_prefix("path:").or(main.starts_with('/').then_some(main)) {
        attrs.insert("type".into(), Attr::Str("path".into()));
        attrs.insert("path".into(), Attr::Str(crate::compile::canon_path(rest)));
    } else if let Some((vcs, url)) = main.split_once('+').filter(|(v, _)| matches!(*v, "git" | "hg"))
        && url.contains(':')
    {
        attrs.insert("type".into(), Attr::Str(vcs.into()));
        attrs.insert("url".into(), Attr::Str(url.into()));
    } else if let Some((kind, url)) = main.split_once('+').filter(|(k, _)| matches!(*k, "tarball" | "file")) {
        attrs.insert("type".into(), Attr::Str(kind.into()));
        attrs.insert("url".into(), Attr::Str(url.into()));
    } else if main.starts_with("http://") || main.starts_with("https://") || main.starts_with("file://") {
        let archive = [".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst"];
        let kind = if archive.iter().any(|e| main.ends_with(e)) { "tarball" } else { "file" };
        attrs.insert("type".into(), Attr::Str(kind.into()));
        attrs.insert("url".into(), Attr::Str(main.into()));
    } else {
        // An indirect reference: `ID[/REF[/REV]]`, optionally after `flake:`.
        let rest = main.strip_prefix("flake:").unwrap_or(main);
        let parts: Vec<&str> = rest.split('/').collect();
        let id_ok = |id: &str| {
            id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if parts.is_empty() || parts.len() > 3 || !id_ok(parts[0]) || parts.iter().any(|x| x.is_empty()) {
            return Err(invalid());
        }
        attrs.insert("type".into(), Attr::Str("indirect".into()));
        attrs.insert("id".into(), Attr::Str(parts[0].into()));
        match parts[1..] {
            [r] if is_rev(r) => {
                attrs.insert("rev".into(), Attr::Str(r.into()));
            }
            [r] => {
                attrs.insert("ref".into(), Attr::Str(r.into()));
            }
            [r, v] if is_rev(v) => {
                attrs.insert("ref".into(), Attr::Str(r.into()));
                attrs.insert("rev".into(), Attr::Str(v.into()));
            }
            [] => {}
            _ => return Err(invalid()),
        }
    }
    for (k, v) in params {
        if k == "dir" && v.is_empty() {
            continue;
        }
        attrs.insert(k.clone(), typed(&k, v));
    }
    Ok(attrs)
}

/// The URL form of a flake reference given as attributes.
fn to_url(attrs: &Attrs, p: Pos) -> Result<String> {
    let get = |k: &str| match attrs.get(k) {
        Some(Attr::Str(s)) => Some(s.clone()),
        Some(Attr::Int(i)) => Some(i.to_string()),
        Some(Attr::Bool(b)) => Some(if *b { "1" } else { "0" }.to_string()),
        None => None,
    };
    let need = |k: &str| get(k).ok_or_else(|| bad(format!("flake reference attribute '{k}' is missing"), p));
    let ty = need("type")?;
    let mut query: Vec<(String, String)> = Vec::new();
    let rest = |skip: &[&str], query: &mut Vec<(String, String)>| {
        for (k, _) in attrs.iter() {
            if k != "type" && !skip.contains(&k.as_str()) {
                query.push((k.clone(), get(k).unwrap_or_default()));
            }
        }
    };
    let head = match ty.as_str() {
        "github" | "gitlab" | "sourcehut" => {
            let mut path = format!("{ty}:{}/{}", need("owner")?, need("repo")?);
            if let (Some(_), Some(_)) = (get("ref"), get("rev")) {
                return Err(bad("a flake reference cannot have both a branch and a revision".into(), p));
            }
            if let Some(r) = get("ref").or_else(|| get("rev")) {
                path.push('/');
                path.push_str(&r);
            }
            rest(&["owner", "repo", "ref", "rev"], &mut query);
            path
        }
        "path" => {
            rest(&["path"], &mut query);
            format!("path:{}", need("path")?)
        }
        "git" | "hg" => {
            rest(&["url"], &mut query);
            format!("{ty}+{}", need("url")?)
        }
        "tarball" | "file" => {
            rest(&["url"], &mut query);
            let url = need("url")?;
            let archive = [".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst"];
            let implied = if archive.iter().any(|e| url.ends_with(e)) { "tarball" } else { "file" };
            if implied == ty { url } else { format!("{ty}+{url}") }
        }
        "indirect" => {
            let mut s = format!("flake:{}", need("id")?);
            for k in ["ref", "rev"] {
                if let Some(v) = get(k) {
                    s.push('/');
                    s.push_str(&v);
                }
            }
            rest(&["id", "ref", "rev"], &mut query);
            s
        }
        other => return Err(bad(format!("unsupported flake reference type '{other}'"), p)),
    };
    query.sort();
    if query.is_empty() {
        return Ok(head);
    }
    let q: Vec<String> =
        query.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect();
    Ok(format!("{head}?{}", q.join("&")))
}

fn prim_parse_flake_ref(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let s = ev.force_str(&a[0], p)?;
    let attrs = parse(&s, p)?;
    let entries: Vec<(&str, Value)> = attrs
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Attr::Str(s) => Value::str(s.clone()),
                Attr::Int(i) => Value::Int(*i as i64),
                Attr::Bool(b) => Value::Bool(*b),
            };
            (k.as_str(), v)
        })
        .collect();
    Ok(mk_attrs(entries))
}

fn prim_to_string(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let set = ev.force_attrs(&a[0], p)?;
    let mut attrs = Attrs::new();
    for e in &set.entries {
        let v = ev.force(&e.value)?;
        let attr = match v {
            Value::Int(i) if i < 0 => {
                return Err(bad(format!("negative value given for flake ref attr {}: {i}", e.name), p));
            }
            Value::Int(i) => Attr::Int(i as u64),
            Value::Bool(b) => Attr::Bool(b),
            Value::String(s) => Attr::Str(s.s.clone()),
            other => {
                return Err(bad(
                    format!(
                        "flake reference attribute sets may only contain integers, Booleans, and strings, but attribute '{}' is {}",
                        e.name,
                        other.show_type()
                    ),
                    p,
                ));
            }
        };
        attrs.insert(e.name.to_string(), attr);
    }
    Ok(Value::str(to_url(&attrs, p)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> String {
        to_url(&parse(s, Pos::none()).unwrap(), Pos::none()).unwrap()
    }

    #[test]
    fn round_trips() {
        for s in [
            "github:NixOS/nixpkgs/23.05?dir=lib",
            "github:NixOS/nixpkgs",
            "path:/src/flake",
            "git+https://example.org/repo.git?ref=main",
            "flake:nixpkgs/nixos-24.05",
            "https://example.org/x.tar.gz",
        ] {
            assert_eq!(round(s), s);
        }
        assert_eq!(round("nixpkgs"), "flake:nixpkgs");
        assert_eq!(round("/src/./flake"), "path:/src/flake");
    }

    #[test]
    fn attributes() {
        let a = parse("github:o/r/0123456789abcdef0123456789abcdef01234567?dir=x", Pos::none()).unwrap();
        assert_eq!(a.get("rev"), Some(&Attr::Str("0123456789abcdef0123456789abcdef01234567".into())));
        assert_eq!(a.get("dir"), Some(&Attr::Str("x".into())));
        let a = parse("path:/x?lastModified=12&narHash=sha256-abc", Pos::none()).unwrap();
        assert_eq!(a.get("lastModified"), Some(&Attr::Int(12)));
        assert!(parse("github:onlyowner", Pos::none()).is_err());
    }
}
