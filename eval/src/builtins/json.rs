//! Data formats: `toJSON`/`fromJSON`, `fromTOML` and `toXML`, with Nix's exact output (JSON escapes, float
//! rendering, derivations and paths as strings, XML layout).

use std::rc::Rc;

use super::str_value;
use crate::error::{EvalError, Result};
use crate::eval::{Coerce, Evaluator};
use crate::source::Pos;
use crate::sym::Sym;
use crate::value::{Attr, Attrs, Context, NixStr, PrimFn, Value};

pub(crate) fn table(t: &mut Vec<(&'static str, usize, PrimFn)>) {
    t.extend_from_slice(&[
        ("toJSON", 1, |ev, a, p| {
            let mut ctx = Context::new();
            let s = to_json(ev, &a[0], p, &mut ctx, true)?;
            Ok(str_value(NixStr::with_ctx(s, ctx)))
        }),
        ("fromJSON", 1, |ev, a, p| {
            let s = ev.force_str(&a[0], p)?;
            let j: serde_json::Value = serde_json::from_str(&integer_negative_zero(&s))
                .map_err(|e| EvalError::eval(format!("while parsing JSON: {e}"), p))?;
            json_value(&j, p)
        }),
        ("fromTOML", 1, |ev, a, p| {
            let s = ev.force_str(&a[0], p)?;
            let t: toml::Table = s.parse().map_err(|e: toml::de::Error| {
                EvalError::eval(format!("while parsing TOML: {}", e.message()), p)
            })?;
            toml_value(&toml::Value::Table(t), p)
        }),
        ("toXML", 1, |ev, a, p| {
            let mut ctx = Context::new();
            let mut out = String::from("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n");
            to_xml(ev, &a[0], p, 1, &mut out, &mut ctx)?;
            out.push_str("</expr>\n");
            Ok(str_value(NixStr::with_ctx(out, ctx)))
        }),
    ]);
}

/// A JSON string literal with Nix's escapes (control characters as `\uXXXX`, non-ASCII kept as is).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    serde_json::to_string(&f).unwrap_or_else(|_| "null".into())
}

pub fn to_json(ev: &mut Evaluator, v: &Value, p: Pos, ctx: &mut Context, copy: bool) -> Result<String> {
    let v = ev.force(v)?;
    Ok(match &v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => json_float(*f),
        Value::String(s) => {
            if let Some(c) = &s.ctx {
                ctx.extend(c.iter().cloned());
            }
            json_string(&s.s)
        }
        Value::Path(_) => {
            let s = ev.coerce_to_string(&v, p, Coerce { more: false, copy })?;
            if let Some(c) = s.ctx {
                ctx.extend(*c);
            }
            json_string(&s.s)
        }
        Value::Attrs(a) => {
            if a.get_str("__toString").is_some() {
                let s = ev.coerce_to_string(&v, p, Coerce { more: false, copy })?;
                if let Some(c) = s.ctx {
                    ctx.extend(*c);
                }
                return Ok(json_string(&s.s));
            }
            if let Some(o) = a.get_str("outPath") {
                return to_json(ev, &o.clone(), p, ctx, copy);
            }
            let mut parts = Vec::with_capacity(a.len());
            for e in &a.entries {
                let j = to_json(ev, &e.value, p, ctx, copy).map_err(|err| {
                    err.add_trace(e.pos, format!("while evaluating attribute '{}'", e.name))
                })?;
                parts.push(format!("{}:{j}", json_string(e.name.as_str())));
            }
            format!("{{{}}}", parts.join(","))
        }
        Value::List(l) => {
            let mut parts = Vec::with_capacity(l.len());
            for (i, x) in l.iter().enumerate() {
                parts
                    .push(to_json(ev, x, p, ctx, copy).map_err(|e| {
                        e.add_trace(p, format!("while evaluating list element at index {i}"))
                    })?);
            }
            format!("[{}]", parts.join(","))
        }
        other => {
            return Err(EvalError::eval(format!("cannot convert {} to JSON", other.show_type()), p));
        }
    })
}

/// serde_json reads `-0` as the float -0.0, but it is an integer in JSON's grammar (no fraction, no exponent), and
/// Nix makes it the integer 0: such tokens are rewritten to ` 0` outside strings before parsing.
fn integer_negative_zero(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("-0") {
        return std::borrow::Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'-'
            && b.get(i + 1) == Some(&b'0')
            && !b.get(i + 2).is_some_and(|n| n.is_ascii_digit() || matches!(n, b'.' | b'e' | b'E'))
        {
            out.extend_from_slice(b" 0");
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| text.to_string()))
}

fn json_value(j: &serde_json::Value, p: Pos) -> Result<Value> {
    Ok(match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_u64() {
                Some(u) => {
                    return Err(EvalError::eval(
                        format!("unsigned json number {u} outside of Nix integer range"),
                        p,
                    ));
                }
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
        },
        serde_json::Value::String(s) => Value::str(s.clone()),
        serde_json::Value::Array(a) => {
            Value::list(a.iter().map(|x| json_value(x, p)).collect::<Result<_>>()?)
        }
        serde_json::Value::Object(o) => {
            let mut entries = Vec::with_capacity(o.len());
            for (k, v) in o {
                entries.push(Attr { name: Sym::new(k), value: json_value(v, p)?, pos: Pos::none() });
            }
            Value::attrs(Attrs::from_unsorted(entries))
        }
    })
}

fn toml_value(t: &toml::Value, p: Pos) -> Result<Value> {
    Ok(match t {
        toml::Value::String(s) => Value::str(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => {
            return Err(EvalError::eval(
                format!(
                    "while parsing TOML: dates and times are not supported (found '{d}'); Nix needs the experimental feature 'parse-toml-timestamps' for them"
                ),
                p,
            ));
        }
        toml::Value::Array(a) => Value::list(a.iter().map(|x| toml_value(x, p)).collect::<Result<_>>()?),
        toml::Value::Table(tb) => {
            let mut entries = Vec::with_capacity(tb.len());
            for (k, v) in tb {
                entries.push(Attr { name: Sym::new(k), value: toml_value(v, p)?, pos: Pos::none() });
            }
            Value::attrs(Attrs::from_unsorted(entries))
        }
    })
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push_str("&#xA;"),
            c => out.push(c),
        }
    }
    out
}

/// Nix's XML rendering of a value (used by `toXML` and `--xml`).
pub fn to_xml(
    ev: &mut Evaluator,
    v: &Value,
    p: Pos,
    depth: usize,
    out: &mut String,
    ctx: &mut Context,
) -> Result<()> {
    to_xml_seen(ev, v, p, depth, out, ctx, &mut std::collections::HashSet::new())
}

/// `to_xml`, with the derivations already shown: a derivation's attributes refer back to it (`all`, `out`), so
/// as in Nix each derivation is expanded once and then shown as `<repeated />`.
fn to_xml_seen(
    ev: &mut Evaluator,
    v: &Value,
    p: Pos,
    depth: usize,
    out: &mut String,
    ctx: &mut Context,
    seen: &mut std::collections::HashSet<String>,
) -> Result<()> {
    let ind = "  ".repeat(depth);
    let v = ev.force(v)?;
    match &v {
        Value::Null => out.push_str(&format!("{ind}<null />\n")),
        Value::Bool(b) => out.push_str(&format!("{ind}<bool value=\"{b}\" />\n")),
        Value::Int(i) => out.push_str(&format!("{ind}<int value=\"{i}\" />\n")),
        Value::Float(f) => {
            out.push_str(&format!("{ind}<float value=\"{}\" />\n", crate::print::fmt_float(*f)))
        }
        Value::String(s) => {
            if let Some(c) = &s.ctx {
                ctx.extend(c.iter().cloned());
            }
            out.push_str(&format!("{ind}<string value=\"{}\" />\n", xml_escape(&s.s)));
        }
        Value::Path(s) => out.push_str(&format!("{ind}<path value=\"{}\" />\n", xml_escape(s))),
        // Containers are always opened and closed, even when empty, as Nix's XML writer does.
        Value::List(l) => {
            out.push_str(&format!("{ind}<list>\n"));
            for x in l.iter() {
                to_xml_seen(ev, x, p, depth + 1, out, ctx, seen)?;
            }
            out.push_str(&format!("{ind}</list>\n"));
        }
        Value::Attrs(a) => {
            if ev.is_derivation(a)? {
                let mut attrs_s = String::new();
                let mut drv_path = String::new();
                if let Some(d) = a.get_str("drvPath") {
                    drv_path = ev.force_str(&d.clone(), p)?;
                    attrs_s.push_str(&format!(" drvPath=\"{}\"", xml_escape(&drv_path)));
                }
                if let Some(o) = a.get_str("outPath") {
                    let o = ev.force_str(&o.clone(), p)?;
                    attrs_s.push_str(&format!(" outPath=\"{}\"", xml_escape(&o)));
                }
                out.push_str(&format!("{ind}<derivation{attrs_s}>\n"));
                if !drv_path.is_empty() && seen.insert(drv_path) {
                    xml_attrs(ev, a, p, depth + 1, out, ctx, seen)?;
                } else {
                    out.push_str(&format!("{ind}  <repeated />\n"));
                }
                out.push_str(&format!("{ind}</derivation>\n"));
            } else {
                out.push_str(&format!("{ind}<attrs>\n"));
                xml_attrs(ev, a, p, depth + 1, out, ctx, seen)?;
                out.push_str(&format!("{ind}</attrs>\n"));
            }
        }
        Value::Lambda(c) => match &c.def.param {
            crate::compile::Param::Ident => {
                let name = c.def.arg.map_or(String::new(), |n| xml_escape(n.as_str()));
                out.push_str(&format!(
                    "{ind}<function>\n{ind}  <varpat name=\"{name}\" />\n{ind}</function>\n"
                ));
            }
            crate::compile::Param::Formals { formals, ellipsis, .. } => {
                out.push_str(&format!(
                    "{ind}<function>\n{ind}  <attrspat{}{}>\n",
                    if *ellipsis { " ellipsis=\"1\"" } else { "" },
                    c.def.arg.map_or(String::new(), |n| format!(" name=\"{}\"", xml_escape(n.as_str())))
                ));
                let mut names: Vec<&str> = formals.iter().map(|(n, _)| n.as_str()).collect();
                names.sort();
                for n in names {
                    out.push_str(&format!("{ind}    <attr name=\"{}\" />\n", xml_escape(n)));
                }
                out.push_str(&format!("{ind}  </attrspat>\n{ind}</function>\n"));
            }
        },
        Value::PrimOp(_) | Value::PrimOpApp(_) => out.push_str(&format!("{ind}<unevaluated />\n")),
        Value::Thunk(_) => out.push_str(&format!("{ind}<unevaluated />\n")),
    }
    Ok(())
}

fn xml_attrs(
    ev: &mut Evaluator,
    a: &Rc<Attrs>,
    p: Pos,
    depth: usize,
    out: &mut String,
    ctx: &mut Context,
    seen: &mut std::collections::HashSet<String>,
) -> Result<()> {
    let ind = "  ".repeat(depth);
    for e in &a.entries {
        out.push_str(&format!("{ind}<attr name=\"{}\">\n", xml_escape(e.name.as_str())));
        to_xml_seen(ev, &e.value, p, depth + 1, out, ctx, seen)?;
        out.push_str(&format!("{ind}</attr>\n"));
    }
    Ok(())
}
