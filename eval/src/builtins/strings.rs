//! String builtins: coercion, slicing, replacement, POSIX-ERE `match`/`split` (on the `regex` crate: Rust's
//! leftmost-first alternation can pick different submatches than POSIX leftmost-longest when alternatives overlap),
//! versions, hashes and string context.

use std::rc::Rc;

use super::{mk_attrs, str_value};
use crate::error::{EvalError, Result};
use crate::eval::{Coerce, Evaluator, type_err};
use crate::formats::{self, HashAlgo};
use crate::source::Pos;
use crate::sym::Sym;
use crate::value::{Attr, Attrs, Context, NixStr, PrimFn, Value};

pub(crate) fn table(t: &mut Vec<(&'static str, usize, PrimFn)>) {
    t.extend_from_slice(&[
        // A path stays a path name here: toString does not copy it to the store.
        ("toString", 1, |ev, a, p| Ok(str_value(ev.coerce_to_string(&a[0], p, Coerce { more: true, copy: false })?)) as Result<Value>),
        ("stringLength", 1, |ev, a, p| {
            let s = ev.coerce_to_string(&a[0], p, Coerce { more: false, copy: true })?;
            Ok(Value::Int(s.s.len() as i64))
        }),
        ("substring", 3, prim_substring),
        ("concatStringsSep", 2, |ev, a, p| {
            let sep = ev.force_nstr(&a[0], p)?;
            let l = ev.force_list(&a[1], p)?;
            let mut s = String::new();
            let mut ctx = sep.context();
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    s.push_str(&sep.s);
                }
                let part = ev.coerce_to_string(x, p, Coerce { more: false, copy: true })?;
                s.push_str(&part.s);
                if let Some(c) = part.ctx {
                    ctx.extend(c.iter().cloned());
                }
            }
            Ok(str_value(NixStr::with_ctx(s, ctx)))
        }),
        ("replaceStrings", 3, prim_replace_strings),
        ("match", 2, prim_match),
        ("split", 2, prim_split),
        ("hashString", 2, |ev, a, p| {
            let algo = algo_arg(ev, &a[0], p)?;
            let s = ev.force_str(&a[1], p)?;
            Ok(Value::str(formats::digest(algo, s.as_bytes()).to_hex()))
        }),
        ("convertHash", 1, prim_convert_hash),
        ("baseNameOf", 1, |ev, a, p| {
            let v = ev.force(&a[0])?;
            let s = ev.coerce_to_string(&v, p, Coerce { more: false, copy: false })?;
            let t = s.s.strip_suffix('/').unwrap_or(&s.s);
            let base = t.rsplit('/').next().unwrap_or("").to_string();
            Ok(str_value(NixStr { s: base, ctx: s.ctx }))
        }),
        ("dirOf", 1, |ev, a, p| {
            let v = ev.force(&a[0])?;
            let is_path = matches!(v, Value::Path(_));
            let s = ev.coerce_to_string(&v, p, Coerce { more: false, copy: false })?;
            let dir = match s.s.rfind('/') {
                None => ".".to_string(),
                Some(0) => "/".to_string(),
                Some(i) => s.s[..i].to_string(),
            };
            if is_path { Ok(Value::path(dir)) } else { Ok(str_value(NixStr { s: dir, ctx: s.ctx })) }
        }),
        ("parseDrvName", 1, |ev, a, p| {
            let s = ev.force_str(&a[0], p)?;
            let b = s.as_bytes();
            let split = (0..b.len()).find(|&i| b[i] == b'-' && i + 1 < b.len() && !b[i + 1].is_ascii_alphabetic());
            let (name, version) = match split {
                Some(i) => (s[..i].to_string(), s[i + 1..].to_string()),
                None => (s.clone(), String::new()),
            };
            Ok(mk_attrs(vec![("name", Value::str(name)), ("version", Value::str(version))]))
        }),
        ("compareVersions", 2, |ev, a, p| {
            let x = ev.force_str(&a[0], p)?;
            let y = ev.force_str(&a[1], p)?;
            Ok(Value::Int(compare_versions(&x, &y)))
        }),
        ("splitVersion", 1, |ev, a, p| {
            let s = ev.force_str(&a[0], p)?;
            let mut rest = s.as_str();
            let mut out = Vec::new();
            while let Some((c, r)) = next_component(rest) {
                out.push(Value::str(c));
                rest = r;
            }
            Ok(Value::list(out))
        }),
        ("placeholder", 1, |ev, a, p| {
            let o = ev.force_str(&a[0], p)?;
            let h = formats::digest(HashAlgo::Sha256, format!("nix-output:{o}").as_bytes());
            Ok(Value::str(format!("/{}", h.to_nix32())))
        }),
        ("hasContext", 1, |ev, a, p| Ok(Value::Bool(ev.force_nstr(&a[0], p)?.has_ctx()))),
        ("unsafeDiscardStringContext", 1, |ev, a, p| Ok(Value::str(ev.force_str(&a[0], p)?))),
        ("unsafeDiscardOutputDependency", 1, |ev, a, p| {
            let s = ev.force_nstr(&a[0], p)?;
            let ctx: Context = s.ctx.iter().flat_map(|c| c.iter()).map(|c| c.strip_prefix('=').unwrap_or(c).to_string()).collect();
            Ok(str_value(NixStr::with_ctx(s.s.clone(), ctx)))
        }),
        ("addDrvOutputDependencies", 1, |ev, a, p| {
            let s = ev.force_nstr(&a[0], p)?;
            let ctx = s.context();
            if ctx.len() != 1 {
                return Err(EvalError::eval(
                    format!("context of string '{}' must have exactly one element, but has {}", s.s, ctx.len()),
                    p,
                ));
            }
            let c = ctx.iter().next().cloned().unwrap_or_default();
            if c.starts_with('=') || c.starts_with('!') {
                if c.starts_with('!') {
                    return Err(EvalError::eval(
                        format!("`addDrvOutputDependencies` can only act on derivations, not on a derivation output such as '{}'", c.rsplit('!').next().unwrap_or("")),
                        p,
                    ));
                }
                return Ok(Value::String(s));
            }
            if !c.ends_with(".drv") {
                return Err(EvalError::eval(format!("path '{c}' is not a derivation"), p));
            }
            let mut n = Context::new();
            n.insert(format!("={c}"));
            Ok(str_value(NixStr::with_ctx(s.s.clone(), n)))
        }),
        ("getContext", 1, prim_get_context),
        ("appendContext", 2, prim_append_context),
        ("getEnv", 1, |ev, a, p| {
            let n = ev.force_str(&a[0], p)?;
            if ev.settings.pure {
                return Ok(Value::str(""));
            }
            Ok(Value::str(ev.io.get_env(&n).unwrap_or_default()))
        }),
    ]);
}

fn algo_arg(ev: &mut Evaluator, v: &Value, p: Pos) -> Result<HashAlgo> {
    let s = ev.force_str(v, p)?;
    formats::parse_algo(&s).ok_or_else(|| {
        // Current Nix's wording, which lists blake3 although that needs an experimental feature.
        EvalError::eval(
            format!("unknown hash algorithm '{s}', expect 'blake3', 'md5', 'sha1', 'sha256', or 'sha512'"),
            p,
        )
    })
}

fn prim_substring(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let start = ev.force_int(&a[0], p)?;
    let len = ev.force_int(&a[1], p)?;
    let s = ev.coerce_to_string(&a[2], p, Coerce { more: false, copy: true })?;
    if start < 0 {
        return Err(EvalError::eval("negative start position in 'substring'", p));
    }
    let b = s.s.as_bytes();
    let start = (start as usize).min(b.len());
    let end = if len < 0 { b.len() } else { start.saturating_add(len as usize).min(b.len()) };
    let sub = String::from_utf8_lossy(&b[start..end]).into_owned();
    Ok(str_value(NixStr { s: sub, ctx: s.ctx }))
}

fn prim_replace_strings(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let from_l = ev.force_list(&a[0], p)?;
    let to_l = ev.force_list(&a[1], p)?;
    if from_l.len() != to_l.len() {
        return Err(EvalError::eval(
            "'from' and 'to' arguments passed to builtins.replaceStrings have different lengths",
            p,
        ));
    }
    let mut from = Vec::new();
    for x in from_l.iter() {
        from.push(ev.force_str(x, p)?.into_bytes());
    }
    let s = ev.force_nstr(&a[2], p)?;
    let mut to: Vec<Option<Rc<NixStr>>> = vec![None; to_l.len()];
    let mut ctx = s.context();
    let b = s.s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut pos = 0;
    while pos <= b.len() {
        let mut found = false;
        for (i, f) in from.iter().enumerate() {
            if b[pos..].starts_with(f) {
                found = true;
                if to[i].is_none() {
                    to[i] = Some(ev.force_nstr(&to_l[i], p)?);
                }
                let t = to[i].as_ref().unwrap_or_else(|| unreachable!());
                out.extend_from_slice(t.s.as_bytes());
                if let Some(c) = &t.ctx {
                    ctx.extend(c.iter().cloned());
                }
                if f.is_empty() {
                    if pos < b.len() {
                        out.push(b[pos]);
                    }
                    pos += 1;
                } else {
                    pos += f.len();
                }
                break;
            }
        }
        if !found {
            if pos < b.len() {
                out.push(b[pos]);
            }
            pos += 1;
        }
    }
    Ok(str_value(NixStr::with_ctx(String::from_utf8_lossy(&out).into_owned(), ctx)))
}

thread_local! {
    static REGEX_CACHE: std::cell::RefCell<std::collections::HashMap<String, Rc<regex::Regex>>> = Default::default();
}

/// Compiles a POSIX extended regular expression (anchored when `full`).
fn regex(re: &str, full: bool, p: Pos) -> Result<Rc<regex::Regex>> {
    let key = format!("{}{re}", if full { "F" } else { "S" });
    if let Some(r) = REGEX_CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(r);
    }
    let translated =
        translate_ere(re).ok_or_else(|| EvalError::eval(format!("invalid regular expression '{re}'"), p))?;
    let pat = if full { format!("^(?:{translated})$") } else { translated };
    // In POSIX regular expressions `.` matches a newline too.
    let r = regex::RegexBuilder::new(&pat)
        .dot_matches_new_line(true)
        .build()
        .map_err(|_| EvalError::eval(format!("invalid regular expression '{re}'"), p))?;
    let r = Rc::new(r);
    REGEX_CACHE.with(|c| c.borrow_mut().insert(key, r.clone()));
    Ok(r)
}

/// POSIX ERE and Rust regex mostly agree; differences handled here: a `]` first in a bracket is literal, `{`
/// not starting a valid interval is literal, and `\` may only escape a special character (`\s`, `\d`, `\n`, `\/`
/// are invalid, as in the libstdc++ `std::regex` that Nix uses): `None` then.
fn translate_ere(re: &str) -> Option<String> {
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '[' => {
                out.push('[');
                i += 1;
                if i < chars.len() && chars[i] == '^' {
                    out.push('^');
                    i += 1;
                }
                if i < chars.len() && chars[i] == ']' {
                    out.push_str("\\]");
                    i += 1;
                }
                while i < chars.len() && chars[i] != ']' {
                    if chars[i] == '[' && i + 1 < chars.len() && matches!(chars[i + 1], ':' | '=' | '.') {
                        let close = chars[i + 1];
                        let start = i;
                        i += 2;
                        while i + 1 < chars.len() && !(chars[i] == close && chars[i + 1] == ']') {
                            i += 1;
                        }
                        i += 2;
                        out.extend(&chars[start..i.min(chars.len())]);
                        continue;
                    }
                    match chars[i] {
                        '\\' => out.push_str("\\\\"),
                        '[' => out.push_str("\\["),
                        '&' | '~' | '-' if i + 1 < chars.len() && chars[i + 1] == chars[i] => {
                            out.push('\\');
                            out.push(chars[i]);
                        }
                        ch => out.push(ch),
                    }
                    i += 1;
                }
                out.push(']');
                i += 1;
            }
            '\\' => {
                let n = *chars.get(i + 1)?;
                // libstdc++'s list for extended syntax: `]` and `}` are not in it.
                if !"^$\\.*+?()[{|".contains(n) {
                    return None;
                }
                out.push('\\');
                out.push(n);
                i += 2;
            }
            '{' => {
                let rest: String = chars[i..].iter().collect();
                let valid = rest.find('}').is_some_and(|e| {
                    let inner = &rest[1..e];
                    !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == ',')
                });
                if valid && !out.is_empty() {
                    out.push('{')
                } else {
                    out.push_str("\\{")
                }
                i += 1;
            }
            '}' => {
                out.push('}');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

fn captures_list(caps: &regex::Captures<'_>) -> Value {
    Value::list(caps.iter().skip(1).map(|m| m.map_or(Value::Null, |m| Value::str(m.as_str()))).collect())
}

fn prim_match(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let re = ev.force_str(&a[0], p)?;
    let s = ev.force_str(&a[1], p)?;
    let r = regex(&re, true, p)?;
    Ok(match r.captures(&s) {
        Some(c) => captures_list(&c),
        None => Value::Null,
    })
}

fn prim_split(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let re = ev.force_str(&a[0], p)?;
    let s = ev.force_str(&a[1], p)?;
    let r = regex(&re, false, p)?;
    let mut out = Vec::new();
    let mut last = 0;
    // Matches are found as std::regex_iterator finds them: unlike `captures_iter`, an empty match right after a
    // non-empty one counts (`split "(a*)" "baac"` has an empty match before `c`); only an empty match where the
    // previous empty one was is skipped, by moving on one character.
    let mut pos = 0;
    let mut last_empty = None;
    while pos <= s.len() {
        let Some(c) = r.captures_at(&s, pos) else { break };
        let m = c.get(0).unwrap_or_else(|| unreachable!("group 0 always matches"));
        if m.is_empty() && last_empty == Some(m.start()) {
            match s[m.start()..].chars().next() {
                Some(ch) => pos = m.start() + ch.len_utf8(),
                None => break,
            }
            continue;
        }
        out.push(Value::str(&s[last..m.start()]));
        out.push(captures_list(&c));
        last = m.end();
        last_empty = m.is_empty().then_some(m.start());
        pos = m.end();
    }
    out.push(Value::str(&s[last..]));
    Ok(Value::list(out))
}

fn prim_convert_hash(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let args = ev.force_attrs(&a[0], p)?;
    let hash_v =
        args.get_str("hash").cloned().ok_or_else(|| EvalError::eval("attribute 'hash' missing", p))?;
    let hash_s = ev.force_str(&hash_v, p)?;
    let algo = match args.get_str("hashAlgo") {
        Some(v) => Some(algo_arg(ev, &v.clone(), p)?),
        None => None,
    };
    let fmt_v = args
        .get_str("toHashFormat")
        .cloned()
        .ok_or_else(|| EvalError::eval("attribute 'toHashFormat' missing", p))?;
    let fmt = ev.force_str(&fmt_v, p)?;
    let h = formats::parse_hash(&hash_s, algo).map_err(|m| EvalError::eval(m, p))?;
    let out = match fmt.as_str() {
        "base16" => h.to_hex(),
        "nix32" | "base32" => h.to_nix32(),
        "base64" => h.to_base64(),
        "sri" => h.to_sri(),
        f => {
            return Err(EvalError::eval(
                format!("unknown hash format '{f}', expect 'base16', 'base32', 'base64', or 'sri'"),
                p,
            ));
        }
    };
    Ok(Value::str(out))
}

fn next_component(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start_matches(['.', '-']);
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let n = if b[0].is_ascii_digit() {
        b.iter().take_while(|c| c.is_ascii_digit()).count()
    } else {
        b.iter().take_while(|c| !c.is_ascii_digit() && **c != b'.' && **c != b'-').count()
    };
    Some((s[..n].to_string(), &s[n..]))
}

fn component_lt(a: &str, b: &str) -> bool {
    let na: Option<u64> = a.parse().ok().filter(|_| !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()));
    let nb: Option<u64> = b.parse().ok().filter(|_| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()));
    match (na, nb) {
        (Some(x), Some(y)) => x < y,
        _ if a.is_empty() && nb.is_some() => true,
        _ if a == "pre" && b != "pre" => true,
        _ if b == "pre" => false,
        (_, Some(_)) => true,
        (Some(_), _) => false,
        _ => a < b,
    }
}

pub fn compare_versions(x: &str, y: &str) -> i64 {
    let (mut a, mut b) = (x, y);
    loop {
        let ca = next_component(a);
        let cb = next_component(b);
        if ca.is_none() && cb.is_none() {
            return 0;
        }
        let (sa, ra) = ca.unwrap_or((String::new(), ""));
        let (sb, rb) = cb.unwrap_or((String::new(), ""));
        if component_lt(&sa, &sb) {
            return -1;
        }
        if component_lt(&sb, &sa) {
            return 1;
        }
        a = ra;
        b = rb;
    }
}

fn prim_get_context(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let s = ev.force_nstr(&a[0], p)?;
    #[derive(Default)]
    struct Info {
        path: bool,
        all: bool,
        outputs: Vec<String>,
    }
    let mut map: std::collections::BTreeMap<String, Info> = Default::default();
    for c in s.ctx.iter().flat_map(|c| c.iter()) {
        if let Some(d) = c.strip_prefix('=') {
            map.entry(d.to_string()).or_default().all = true;
        } else if let Some(rest) = c.strip_prefix('!') {
            let (o, d) = rest.split_once('!').unwrap_or(("out", rest));
            map.entry(d.to_string()).or_default().outputs.push(o.to_string());
        } else {
            map.entry(c.clone()).or_default().path = true;
        }
    }
    let entries = map
        .into_iter()
        .map(|(k, info)| {
            let mut e = Vec::new();
            if info.all {
                e.push(("allOutputs", Value::Bool(true)));
            }
            if !info.outputs.is_empty() {
                e.push(("outputs", Value::list(info.outputs.into_iter().map(Value::str).collect())));
            }
            if info.path {
                e.push(("path", Value::Bool(true)));
            }
            Attr { name: Sym::new(&k), value: mk_attrs(e), pos: Pos::none() }
        })
        .collect();
    Ok(Value::attrs(Attrs { entries }))
}

fn prim_append_context(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let s = ev.force_nstr(&a[0], p)?;
    let m = ev.force_attrs(&a[1], p)?;
    let mut ctx = s.context();
    let store = format!("{}/", ev.settings.store_dir);
    for e in &m.entries {
        let path = e.name.as_str();
        if !path.starts_with(&store) {
            return Err(EvalError::eval(format!("context key '{path}' is not a store path"), p));
        }
        let info = ev.force_attrs(&e.value, p)?;
        if let Some(v) = info.get_str("path")
            && ev.force_bool(&v.clone(), p)?
        {
            ctx.insert(path.to_string());
        }
        if let Some(v) = info.get_str("allOutputs")
            && ev.force_bool(&v.clone(), p)?
        {
            if !path.ends_with(".drv") {
                return Err(EvalError::eval(
                    format!(
                        "tried to add all-outputs context of {path}, which is not a derivation, to a string"
                    ),
                    p,
                ));
            }
            ctx.insert(format!("={path}"));
        }
        if let Some(v) = info.get_str("outputs") {
            let l = ev.force_list(&v.clone(), p)?;
            if !l.is_empty() && !path.ends_with(".drv") {
                return Err(EvalError::eval(
                    format!(
                        "tried to add derivation output context of {path}, which is not a derivation, to a string"
                    ),
                    p,
                ));
            }
            for o in l.iter() {
                let o = ev.force_str(o, p)?;
                ctx.insert(format!("!{o}!{path}"));
            }
        }
    }
    Ok(str_value(NixStr::with_ctx(s.s.clone(), ctx)))
}

#[allow(dead_code)]
fn expect_string(v: &Value, p: Pos) -> Result<()> {
    match v {
        Value::String(_) => Ok(()),
        v => Err(type_err(v, "a string", p)),
    }
}
