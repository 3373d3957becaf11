//! File and store builtins: reading files and directories, `toFile`, `path`/`filterSource` and `"${./p}"`
//! (store paths computed here, objects written through `EvalIo`), the search path (`findFile`, `<nix/…>`), and
//! `fetchurl`/`fetchTarball` with hash checks.

use std::collections::HashSet;
use std::rc::Rc;

use super::path_arg;
use crate::error::{ErrorKind, EvalError, Result};
use crate::eval::{Coerce, Evaluator, io_reason};
use crate::formats::{self, Hash, HashAlgo};
use crate::io::{FileKind, StoreObject};
use crate::source::Pos;
use crate::sym::Sym;
use crate::value::{Attr, Attrs, Context, NixStr, PrimFn, Value};

/// Where the built-in `<nix/…>` files live (they are compiled from text embedded in the binary).
pub const COREPKGS: &str = "/__corepkgs__/";

pub(crate) fn table(t: &mut Vec<(&'static str, usize, PrimFn)>) {
    t.extend_from_slice(&[
        ("readFile", 1, prim_read_file as PrimFn),
        ("readDir", 1, prim_read_dir),
        ("readFileType", 1, |ev, a, p| {
            let path = path_arg(ev, &a[0], p)?;
            let k = ev.io.file_kind(&path).map_err(|e| io_err("getting status of", &path, &e, p))?;
            Ok(Value::str(k.nix_name()))
        }),
        ("pathExists", 1, |ev, a, p| {
            let arg = ev.force(&a[0])?;
            // A string ending in `/` or `/.` must name a directory (symlinks followed all the way); otherwise
            // the last component itself must exist, so a dangling symlink does.
            let must_be_dir = matches!(&arg, Value::String(s) if s.s.ends_with('/') || s.s.ends_with("/."));
            let path = path_arg(ev, &arg, p)?;
            if let Some(rest) = path.strip_prefix(COREPKGS) {
                return Ok(Value::Bool(corepkg_source(rest).is_some()));
            }
            if must_be_dir {
                let dir = ev.io.canonicalize(&path).and_then(|c| ev.io.file_kind(&c));
                return Ok(Value::Bool(matches!(dir, Ok(FileKind::Directory))));
            }
            let path = crate::compile::canon_path(&path);
            let exists = match path.rsplit_once('/') {
                Some((parent, base)) if !base.is_empty() => {
                    let parent = if parent.is_empty() { "/" } else { parent };
                    ev.io
                        .canonicalize(parent)
                        .and_then(|c| ev.io.file_kind(&format!("{}/{base}", c.trim_end_matches('/'))))
                        .is_ok()
                }
                _ => ev.io.file_kind(&path).is_ok(),
            };
            Ok(Value::Bool(exists))
        }),
        ("hashFile", 2, |ev, a, p| {
            let algo_s = ev.force_str(&a[0], p)?;
            let algo = formats::parse_algo(&algo_s)
                .ok_or_else(|| EvalError::eval(format!("unknown hash algorithm '{algo_s}'"), p))?;
            let path = path_arg(ev, &a[1], p)?;
            let data = ev.io.read_file(&path).map_err(|e| read_err(ev, "opening file", &path, &e, p))?;
            Ok(Value::str(formats::digest(algo, &data).to_hex()))
        }),
        ("toFile", 2, prim_to_file),
        ("path", 1, prim_path),
        ("filterSource", 2, |ev, a, p| {
            let src = path_arg(ev, &a[1], p)?;
            let name = src.rsplit('/').next().unwrap_or("source").to_string();
            let sp = add_path(ev, &src, &name, Some(a[0].clone()), true, None, p)?;
            Ok(store_string(sp))
        }),
        ("storePath", 1, |ev, a, p| {
            let s = ev.coerce_to_string(&a[0], p, Coerce { more: false, copy: false })?;
            let prefix = format!("{}/", ev.settings.store_dir);
            let Some(rest) = s.s.strip_prefix(&prefix) else {
                return Err(EvalError::eval(format!("path '{}' is not in the Nix store", s.s), p));
            };
            let base = rest.split('/').next().unwrap_or("");
            Ok(store_string(format!("{prefix}{base}")))
        }),
        ("toPath", 1, |ev, a, p| {
            let s = ev.coerce_to_string(&a[0], p, Coerce { more: false, copy: false })?;
            if !s.s.starts_with('/') {
                return Err(EvalError::eval(
                    format!("string '{}' doesn't represent an absolute path", s.s),
                    p,
                ));
            }
            Ok(Value::str(crate::compile::canon_path(&s.s)))
        }),
        ("fetchurl", 1, prim_fetchurl),
        ("fetchTarball", 1, prim_fetch_tarball),
    ]);
}

fn io_err(action: &str, path: &str, e: &std::io::Error, p: Pos) -> EvalError {
    EvalError::new(ErrorKind::Io, format!("{action} '{path}': {}", io_reason(e)), p)
}

/// `io_err`, except that a missing file inside the store means a store path that is not there (Nix checks the
/// store paths a path refers to before reading it; `--eval` computes paths such as `toFile`'s without writing).
fn read_err(ev: &Evaluator, action: &str, path: &str, e: &std::io::Error, p: Pos) -> EvalError {
    let store = &ev.settings.store_dir;
    if e.kind() == std::io::ErrorKind::NotFound
        && let Some(rest) = path.strip_prefix(store.as_str()).and_then(|r| r.strip_prefix('/'))
    {
        let base = rest.split('/').next().unwrap_or(rest);
        return EvalError::new(ErrorKind::Io, format!("path '{store}/{base}' is not valid"), p);
    }
    io_err(action, path, e, p)
}

fn store_string(sp: String) -> Value {
    let mut c = Context::new();
    c.insert(sp.clone());
    Value::String(Rc::new(NixStr::with_ctx(sp, c)))
}

fn prim_read_file(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let path = path_arg(ev, &a[0], p)?;
    let data = ev.io.read_file(&path).map_err(|e| read_err(ev, "opening file", &path, &e, p))?;
    Ok(Value::str(String::from_utf8_lossy(&data).into_owned()))
}

fn prim_read_dir(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let path = path_arg(ev, &a[0], p)?;
    let entries = ev.io.read_dir(&path).map_err(|e| io_err("opening directory", &path, &e, p))?;
    Ok(Value::attrs(Attrs::from_unsorted(
        entries
            .into_iter()
            .map(|(n, k)| Attr { name: Sym::new(&n), value: Value::str(k.nix_name()), pos: Pos::none() })
            .collect(),
    )))
}

fn prim_to_file(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let name = ev.force_str(&a[0], p)?;
    let s = ev.force_nstr(&a[1], p)?;
    formats::check_name(&name).map_err(|m| EvalError::eval(m, p))?;
    let mut refs = Vec::new();
    for c in s.ctx.iter().flat_map(|c| c.iter()) {
        if c.starts_with('=') || c.starts_with('!') {
            return Err(EvalError::eval(
                format!(
                    "files created by builtins.toFile may not reference derivations, but {name} references {}",
                    c.trim_start_matches('=')
                ),
                p,
            ));
        }
        refs.push(c.clone());
    }
    let sp = formats::text_path(&ev.settings.store_dir, &name, s.s.as_bytes(), &refs)
        .map_err(|m| EvalError::eval(m, p))?;
    ev.store_refs.insert(sp.clone(), refs.clone().into());
    if !ev.settings.read_only && !ev.io.is_valid_path(&sp) {
        ev.io
            .add_to_store(&sp, StoreObject::Text { contents: s.s.as_bytes(), references: &refs })
            .map_err(|e| io_err("writing", &sp, &e, p))?;
    }
    Ok(store_string(sp))
}

fn prim_path(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let args = ev.force_attrs(&a[0], p)?;
    let pv = args.get_str("path").cloned().ok_or_else(|| EvalError::eval("attribute 'path' missing", p))?;
    let src = path_arg(ev, &pv, p)?;
    let name = match args.get_str("name") {
        Some(n) => ev.force_str(&n.clone(), p)?,
        None => src.rsplit('/').next().unwrap_or("source").to_string(),
    };
    let recursive = match args.get_str("recursive") {
        Some(r) => ev.force_bool(&r.clone(), p)?,
        None => true,
    };
    let filter = args.get_str("filter").cloned();
    let expected = match args.get_str("sha256") {
        Some(h) => {
            let h = ev.force_str(&h.clone(), p)?;
            Some(formats::parse_hash(&h, Some(HashAlgo::Sha256)).map_err(|m| EvalError::eval(m, p))?)
        }
        None => None,
    };
    for e in &args.entries {
        if !matches!(e.name.as_str(), "path" | "name" | "recursive" | "filter" | "sha256") {
            return Err(EvalError::eval(format!("unsupported argument '{}' to 'builtins.path'", e.name), p));
        }
    }
    let sp = add_path(ev, &src, &name, filter, recursive, expected, p)?;
    Ok(store_string(sp))
}

/// Adds a source path to the store (NAR-hashed unless `recursive` is false), applying a Nix filter function.
pub fn add_path(
    ev: &mut Evaluator,
    src: &str,
    name: &str,
    filter: Option<Value>,
    recursive: bool,
    expected: Option<Hash>,
    p: Pos,
) -> Result<String> {
    formats::check_name(name).map_err(|m| EvalError::eval(format!("invalid store path name: {m}"), p))?;
    let kind = ev.io.file_kind(src).map_err(|e| io_err("getting status of", src, &e, p))?;
    let include: Option<HashSet<String>> = match &filter {
        Some(f) => {
            let mut set = HashSet::new();
            walk_filter(ev, f, src, &mut set, p)?;
            Some(set)
        }
        None => None,
    };
    let store_dir = ev.settings.store_dir.clone();
    let (sp, got, flat) = if recursive {
        let mut nar = Vec::new();
        let inc = include.clone();
        let pred = move |x: &str| inc.as_ref().is_none_or(|s| s.contains(x));
        formats::nar(ev.io.as_ref(), src, Some(&pred), &mut nar)
            .map_err(|e| io_err("reading", src, &e, p))?;
        let h = formats::sha256(&nar);
        (
            formats::make_store_path(&store_dir, "source", &h, name).map_err(|m| EvalError::eval(m, p))?,
            Hash::from_sha256(h),
            None,
        )
    } else {
        if !matches!(kind, FileKind::Regular { .. }) {
            return Err(EvalError::eval(
                format!("path '{src}' is not a regular file, but non-recursive hashing needs one"),
                p,
            ));
        }
        let data = ev.io.read_file(src).map_err(|e| io_err("opening file", src, &e, p))?;
        let h = Hash::from_sha256(formats::sha256(&data));
        (
            formats::fixed_output_path(&store_dir, name, false, &h).map_err(|m| EvalError::eval(m, p))?,
            h,
            Some(data),
        )
    };
    if let Some(exp) = expected
        && exp != got
    {
        // Nix compares the store paths the two hashes give, and says so.
        return Err(EvalError::eval(
            format!("store path mismatch in (possibly filtered) path added from '{src}'"),
            p,
        ));
    }
    if !ev.settings.read_only && !ev.io.is_valid_path(&sp) {
        let object = match &flat {
            Some(contents) => StoreObject::Flat { contents, algo: HashAlgo::Sha256 },
            None => StoreObject::Tree { src, include: include.as_ref() },
        };
        ev.io.add_to_store(&sp, object).map_err(|e| io_err("copying", src, &e, p))?;
    }
    Ok(sp)
}

fn walk_filter(ev: &mut Evaluator, f: &Value, dir: &str, set: &mut HashSet<String>, p: Pos) -> Result<()> {
    if !matches!(ev.io.file_kind(dir), Ok(FileKind::Directory)) {
        return Ok(());
    }
    let entries = ev.io.read_dir(dir).map_err(|e| io_err("opening directory", dir, &e, p))?;
    for (name, kind) in entries {
        let child = format!("{}/{name}", dir.trim_end_matches('/'));
        let r = ev.call_n(f, &[Value::str(child.clone()), Value::str(kind.nix_name())], p)?;
        if ev.force_bool(&r, p)? {
            set.insert(child.clone());
            if kind == FileKind::Directory {
                walk_filter(ev, f, &child, set, p)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn hash_mismatch(what: &str, specified: &Hash, got: &Hash, p: Pos) -> EvalError {
    EvalError::eval(
        format!(
            "hash mismatch in {what}:\n         specified: {}\n         got:       {}",
            specified.to_sri(),
            got.to_sri()
        ),
        p,
    )
}

pub(crate) fn prim_find_file(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let list = ev.force_list(&a[0], p)?;
    let name = ev.force_str(&a[1], p)?;
    let mut entries = Vec::with_capacity(list.len());
    for e in list.iter() {
        let e = ev.force_attrs(e, p)?;
        let prefix = match e.get_str("prefix") {
            Some(v) => ev.force_str(&v.clone(), p)?,
            None => String::new(),
        };
        let pv = e.get_str("path").cloned().ok_or_else(|| EvalError::eval("attribute 'path' missing", p))?;
        let path = ev.coerce_to_string(&pv, p, Coerce { more: false, copy: false })?.s;
        entries.push((prefix, path));
    }
    let found = ev.find_in(&entries, &name, p)?;
    Ok(Value::path(found))
}

/// Whether `name` is one of the built-in `<nix/…>` files.
pub(crate) fn corepkg_exists(name: &str) -> bool {
    corepkg_source(name).is_some()
}

fn corepkg_source(name: &str) -> Option<&'static str> {
    match name {
        "fetchurl.nix" => Some(FETCHURL_NIX),
        _ => None,
    }
}

pub(crate) fn import_corepkg(ev: &mut Evaluator, name: &str, p: Pos) -> Result<Value> {
    let src = corepkg_source(name).ok_or_else(|| {
        EvalError::eval(format!("opening file '{COREPKGS}{name}': No such file or directory"), p)
    })?;
    let e = ev.compile(&format!("{COREPKGS}{name}"), src, "/__corepkgs__", None)?;
    let env = Rc::new(crate::value::Env::root());
    ev.eval(&e, &env)
}

/// `<nix/fetchurl.nix>`: a fixed-output derivation built by the `builtin:fetchurl` builder, with the attributes
/// Nix's own file gives it so that `.drv` paths agree.
const FETCHURL_NIX: &str = r#"
{ system ? "", url, hash ? "", md5 ? "", sha1 ? "", sha256 ? "", sha512 ? ""
, outputHash ? (if hash != "" then hash else if sha512 != "" then sha512 else if sha1 != "" then sha1 else if md5 != "" then md5 else sha256)
, outputHashAlgo ? (if hash != "" then "" else if sha512 != "" then "sha512" else if sha1 != "" then "sha1" else if md5 != "" then "md5" else "sha256")
, executable ? false, unpack ? false, name ? baseNameOf (toString url), impure ? false }:
derivation ({
  builder = "builtin:fetchurl";
  outputHashMode = if unpack || executable then "recursive" else "flat";
  inherit name url executable unpack;
  system = "builtin";
  preferLocalBuild = true;
  impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
  urls = [ url ];
} // (if impure then { __impure = true; } else { inherit outputHashAlgo outputHash; }))
"#;

struct FetchArgs {
    url: String,
    name: Option<String>,
    hash: Option<Hash>,
}

fn fetch_args(ev: &mut Evaluator, v: &Value, p: Pos) -> Result<FetchArgs> {
    match ev.force(v)? {
        Value::Attrs(a) => {
            let url_v =
                a.get_str("url").cloned().ok_or_else(|| EvalError::eval("attribute 'url' missing", p))?;
            let url = ev.coerce_to_string(&url_v, p, Coerce { more: false, copy: false })?.s;
            let name = match a.get_str("name") {
                Some(n) => Some(ev.force_str(&n.clone(), p)?),
                None => None,
            };
            let mut hash = None;
            for e in &a.entries {
                match e.name.as_str() {
                    "sha256" => {
                        let s = ev.force_str(&e.value, p)?;
                        hash = Some(
                            formats::parse_hash(&s, Some(HashAlgo::Sha256))
                                .map_err(|m| EvalError::eval(m, p))?,
                        );
                    }
                    "hash" => {
                        let s = ev.force_str(&e.value, p)?;
                        hash = Some(if s.is_empty() {
                            Hash::zero(HashAlgo::Sha256)
                        } else {
                            formats::parse_hash(&s, None).map_err(|m| EvalError::eval(m, p))?
                        });
                    }
                    "url" | "name" => {}
                    other => {
                        return Err(EvalError::eval(format!("unsupported argument '{other}' to fetcher"), p));
                    }
                }
            }
            Ok(FetchArgs { url, name, hash })
        }
        other => {
            let url = ev.coerce_to_string(&other, p, Coerce { more: false, copy: false })?.s;
            Ok(FetchArgs { url, name: None, hash: None })
        }
    }
}

fn prim_fetchurl(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let args = fetch_args(ev, &a[0], p)?;
    let name = args.name.clone().unwrap_or_else(|| url_base_name(&args.url));
    formats::check_name(&name).map_err(|m| EvalError::eval(m, p))?;
    let store_dir = ev.settings.store_dir.clone();
    // With a hash, the store path is known before downloading, and an existing one is not fetched again.
    if let Some(exp) = &args.hash {
        let sp =
            formats::fixed_output_path(&store_dir, &name, false, exp).map_err(|m| EvalError::eval(m, p))?;
        if ev.io.is_valid_path(&sp) {
            return Ok(store_string(sp));
        }
    }
    let cache_key = format!("file:{name}:{}", args.url);
    let sp = fetch_cached(ev, &args.url, &cache_key, args.hash.is_some(), p, |ev, body| {
        let algo = args.hash.as_ref().map_or(HashAlgo::Sha256, |h| h.algo());
        let got = formats::digest(algo, &body);
        if let Some(exp) = &args.hash
            && *exp != got
        {
            return Err(hash_mismatch(&format!("file downloaded from '{}'", args.url), exp, &got, p));
        }
        let sp =
            formats::fixed_output_path(&store_dir, &name, false, &got).map_err(|m| EvalError::eval(m, p))?;
        ev.io
            .add_to_store(&sp, StoreObject::Flat { contents: &body, algo })
            .map_err(|e| io_err("writing", &sp, &e, p))?;
        Ok(sp)
    })?;
    Ok(store_string(sp))
}

fn prim_fetch_tarball(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let args = fetch_args(ev, &a[0], p)?;
    let name = args.name.clone().unwrap_or_else(|| "source".to_string());
    let sp = fetch_tarball_cached(ev, &args.url, &name, args.hash.as_ref(), p)?;
    Ok(store_string(sp))
}

/// Downloads a tarball, unpacks it into the store as `name` and returns the store path. With an expected hash
/// (of the unpacked tree's NAR) an existing store path is used without downloading; without one, the download
/// is remembered and reused for `tarball-ttl` seconds, then revalidated with the server.
pub(crate) fn fetch_tarball_cached(
    ev: &mut Evaluator,
    url: &str,
    name: &str,
    expected: Option<&Hash>,
    p: Pos,
) -> Result<String> {
    formats::check_name(name).map_err(|m| EvalError::eval(m, p))?;
    let store_dir = ev.settings.store_dir.clone();
    if let Some(exp) = expected
        && exp.algo() == HashAlgo::Sha256
    {
        let sp =
            formats::fixed_output_path(&store_dir, name, true, exp).map_err(|m| EvalError::eval(m, p))?;
        if ev.io.is_valid_path(&sp) {
            return Ok(sp);
        }
    }
    let cache_key = format!("tarball:{name}:{url}");
    fetch_cached(ev, url, &cache_key, expected.is_some(), p, |ev, body| {
        let dir = ev
            .io
            .unpack_tarball(&body)
            .map_err(|e| EvalError::new(ErrorKind::Io, format!("unpacking '{url}': {e}"), p))?;
        // A tarball with a single top-level directory is unpacked to that directory, as Nix does.
        let entries = ev.io.read_dir(&dir).map_err(|e| io_err("opening directory", &dir, &e, p))?;
        let root = match entries.as_slice() {
            [(n, FileKind::Directory)] => format!("{dir}/{n}"),
            _ => dir.clone(),
        };
        let mut nar = Vec::new();
        formats::nar(ev.io.as_ref(), &root, None, &mut nar).map_err(|e| io_err("reading", &root, &e, p))?;
        let got = Hash::from_sha256(formats::sha256(&nar));
        if let Some(exp) = expected {
            let exp_cmp =
                if exp.algo() == HashAlgo::Sha256 { got.clone() } else { formats::digest(exp.algo(), &nar) };
            if *exp != exp_cmp {
                return Err(hash_mismatch(&format!("file downloaded from '{url}'"), exp, &exp_cmp, p));
            }
        }
        let sp =
            formats::fixed_output_path(&store_dir, name, true, &got).map_err(|m| EvalError::eval(m, p))?;
        if !ev.io.is_valid_path(&sp) {
            ev.io
                .add_to_store(&sp, StoreObject::Tree { src: &root, include: None })
                .map_err(|e| io_err("copying", &root, &e, p))?;
        }
        Ok(sp)
    })
}

/// A download through the fetcher cache: a remembered result younger than `tarball-ttl` is used as it is; an
/// older one is revalidated with a conditional request, and only a changed body is passed to `add`, which puts it
/// into the store and returns the path. A `locked` download (checked against a hash whose store path is not
/// there) always asks the server.
fn fetch_cached(
    ev: &mut Evaluator,
    url: &str,
    key: &str,
    locked: bool,
    p: Pos,
    add: impl FnOnce(&mut Evaluator, Vec<u8>) -> Result<String>,
) -> Result<String> {
    let now = ev.settings.current_time;
    let cached =
        if locked { None } else { ev.io.cached_download(key).filter(|c| ev.io.is_valid_path(&c.store_path)) };
    if let Some(c) = &cached
        && now.saturating_sub(c.checked_at) < ev.settings.tarball_ttl as i64
    {
        return Ok(c.store_path.clone());
    }
    let have = cached.as_ref().map(|c| c.validators.clone()).unwrap_or_default();
    let answer = ev
        .io
        .fetch_url_conditional(url, &have)
        .map_err(|e| EvalError::new(ErrorKind::Io, format!("unable to download '{url}': {e}"), p))?;
    let (store_path, validators) = match (answer, cached) {
        (crate::io::Download::NotModified, Some(c)) => (c.store_path, c.validators),
        (crate::io::Download::NotModified, None) => {
            return Err(EvalError::new(
                ErrorKind::Io,
                format!("unable to download '{url}': the server answered 'not modified' to a first request"),
                p,
            ));
        }
        (crate::io::Download::Fetched { body, validators }, _) => (add(ev, body)?, validators),
    };
    let entry = crate::io::CachedDownload { store_path: store_path.clone(), validators, checked_at: now };
    ev.io.record_download(key, &entry);
    Ok(store_path)
}

fn url_base_name(url: &str) -> String {
    let u = url.split(['?', '#']).next().unwrap_or(url);
    u.trim_end_matches('/').rsplit('/').next().unwrap_or("download").to_string()
}
