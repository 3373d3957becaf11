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
            let timestamps = ev.settings.feature("parse-toml-timestamps");
            toml_value(&toml::Value::Table(t), timestamps, p).map_err(|mut e| {
                if !e.msg.starts_with("while parsing TOML") {
                    e.msg = format!("while parsing TOML: error: {}", e.msg);
                }
                e
            })
        }),
        ("toXML", 1, |ev, a, p| {
            let mut ctx = Context::new();
            let mut out = String::from("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n");
            to_xml(ev, &a[0], p, 1, false, true, &mut out, &mut ctx)?;
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

/// `v` as JSON, as `toJSON` writes it (sets with `__toString` or `outPath` as strings, paths copied to the store
/// when `copy`); the contexts of the strings met are added to `ctx`.
pub fn to_json(ev: &mut Evaluator, v: &Value, p: Pos, ctx: &mut Context, copy: bool) -> Result<String> {
    let mut out = String::new();
    write_json(ev, v, p, ctx, copy, &mut out)?;
    Ok(out)
}

/// Appends `v`'s JSON to `out`: one buffer for the whole document, so deep nesting costs linear time. Each level
/// counts towards `max-call-depth`, as in Nix.
fn write_json(
    ev: &mut Evaluator,
    v: &Value,
    p: Pos,
    ctx: &mut Context,
    copy: bool,
    out: &mut String,
) -> Result<()> {
    ev.enter(p)?;
    let r = write_json_inner(ev, v, p, ctx, copy, out);
    ev.leave();
    r
}

fn write_json_inner(
    ev: &mut Evaluator,
    v: &Value,
    p: Pos,
    ctx: &mut Context,
    copy: bool,
    out: &mut String,
) -> Result<()> {
    let v = ev.force(v)?;
    match &v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&json_float(*f)),
        Value::String(s) => {
            if let Some(c) = &s.ctx {
                ctx.extend(c.iter().cloned());
            }
            out.push_str(&json_string(&s.s));
        }
        Value::Path(_) => {
            let s = ev.coerce_to_string(&v, p, Coerce { more: false, copy })?;
            if let Some(c) = s.ctx {
                ctx.extend(c.iter().cloned());
            }
            out.push_str(&json_string(&s.s));
        }
        Value::Attrs(a) => {
            if a.get_str("__toString").is_some() {
                let s = ev.coerce_to_string(&v, p, Coerce { more: false, copy })?;
                if let Some(c) = s.ctx {
                    ctx.extend(c.iter().cloned());
                }
                out.push_str(&json_string(&s.s));
                return Ok(());
            }
            if let Some(o) = a.get_str("outPath") {
                return write_json(ev, &o.clone(), p, ctx, copy, out);
            }
            out.push('{');
            for (i, e) in a.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(e.name.as_str()));
                out.push(':');
                write_json(ev, &e.value, p, ctx, copy, out).map_err(|err| {
                    err.add_trace(e.pos, format!("while evaluating attribute '{}'", e.name))
                })?;
            }
            out.push('}');
        }
        Value::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(ev, x, p, ctx, copy, out)
                    .map_err(|e| e.add_trace(p, format!("while evaluating list element at index {i}")))?;
            }
            out.push(']');
        }
        other => {
            return Err(EvalError::eval(format!("cannot convert {} to JSON", other.show_type()), p));
        }
    }
    Ok(())
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
        serde_json::Value::String(s) => Value::str(nix_string(s, p)?),
        serde_json::Value::Array(a) => {
            Value::list(a.iter().map(|x| json_value(x, p)).collect::<Result<_>>()?)
        }
        serde_json::Value::Object(o) => {
            let mut entries = Vec::with_capacity(o.len());
            for (k, v) in o {
                entries.push(Attr {
                    name: Sym::new(&nix_string(k, p)?),
                    value: json_value(v, p)?,
                    pos: Pos::none(),
                });
            }
            Value::attrs(Attrs::from_unsorted(entries))
        }
    })
}

/// A string read from JSON or TOML, which like a literal may not hold a NUL byte.
fn nix_string(s: &str, p: Pos) -> Result<String> {
    if s.contains('\0') {
        return Err(EvalError::eval(crate::compile::nul_message(s), p));
    }
    Ok(s.to_string())
}

/// A TOML value; dates and times are `{ _type = "timestamp"; value = "…"; }` with the experimental feature
/// `parse-toml-timestamps`, and an error without it.
fn toml_value(t: &toml::Value, timestamps: bool, p: Pos) -> Result<Value> {
    Ok(match t {
        toml::Value::String(s) => Value::str(nix_string(s, p)?),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) if timestamps => super::mk_attrs(vec![
            ("_type", Value::str("timestamp")),
            ("value", Value::str(toml_timestamp(d))),
        ]),
        toml::Value::Datetime(d) => {
            return Err(EvalError::eval(
                format!(
                    "while parsing TOML: dates and times are not supported (found '{d}'); Nix needs the experimental feature 'parse-toml-timestamps' for them"
                ),
                p,
            ));
        }
        toml::Value::Array(a) => {
            Value::list(a.iter().map(|x| toml_value(x, timestamps, p)).collect::<Result<_>>()?)
        }
        toml::Value::Table(tb) => {
            let mut entries = Vec::with_capacity(tb.len());
            for (k, v) in tb {
                entries.push(Attr {
                    name: Sym::new(&nix_string(k, p)?),
                    value: toml_value(v, timestamps, p)?,
                    pos: Pos::none(),
                });
            }
            Value::attrs(Attrs::from_unsorted(entries))
        }
    })
}

/// A TOML date or time as Nix writes it: `T` between date and time, fractions of a second in groups of three
/// digits (milli-, micro- or nanoseconds), the offset as `Z` or `±HH:MM`.
fn toml_timestamp(d: &toml::value::Datetime) -> String {
    let mut out = String::new();
    if let Some(date) = &d.date {
        out.push_str(&format!("{:04}-{:02}-{:02}", date.year, date.month, date.day));
    }
    if let Some(time) = &d.time {
        if d.date.is_some() {
            out.push('T');
        }
        out.push_str(&format!("{:02}:{:02}:{:02}", time.hour, time.minute, time.second));
        let ns = time.nanosecond;
        if ns != 0 {
            if ns % 1_000_000 == 0 {
                out.push_str(&format!(".{:03}", ns / 1_000_000));
            } else if ns % 1_000 == 0 {
                out.push_str(&format!(".{:06}", ns / 1_000));
            } else {
                out.push_str(&format!(".{ns:09}"));
            }
        }
    }
    match d.offset {
        Some(toml::value::Offset::Z) => out.push('Z'),
        Some(toml::value::Offset::Custom { minutes }) => {
            let sign = if minutes < 0 { '-' } else { '+' };
            out.push_str(&format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60));
        }
        None => {}
    }
    out
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

/// Nix's XML rendering of a value (used by `toXML` and `--xml`): with `location`, attributes and functions carry
/// `path`, `line` and `column`; without `strict`, what is not evaluated yet shows as `<unevaluated />`.
#[allow(clippy::too_many_arguments)]
pub fn to_xml(
    ev: &mut Evaluator,
    v: &Value,
    p: Pos,
    depth: usize,
    location: bool,
    strict: bool,
    out: &mut String,
    ctx: &mut Context,
) -> Result<()> {
    let mut w = XmlWriter { location, strict, ctx, seen: std::collections::HashSet::new() };
    w.value(ev, v, p, depth, out)
}

/// The state of one XML rendering. A derivation's attributes refer back to it (`all`, `out`), so as in Nix each
/// derivation is expanded once and then shown as `<repeated />`.
struct XmlWriter<'a> {
    location: bool,
    strict: bool,
    ctx: &'a mut Context,
    seen: std::collections::HashSet<String>,
}

/// ` column="C" line="L" path="P"` (attributes in name order, as Nix's XML writer sorts them).
fn xml_pos(pos: Pos) -> String {
    match pos.resolve() {
        Some(loc) if !loc.file.starts_with('«') => {
            format!(" column=\"{}\" line=\"{}\" path=\"{}\"", loc.column, loc.line, xml_escape(&loc.file))
        }
        Some(loc) => format!(" column=\"{}\" line=\"{}\"", loc.column, loc.line),
        None => String::new(),
    }
}

impl XmlWriter<'_> {
    fn value(&mut self, ev: &mut Evaluator, v: &Value, p: Pos, depth: usize, out: &mut String) -> Result<()> {
        ev.enter(p)?;
        let r = self.value_inner(ev, v, p, depth, out);
        ev.leave();
        r
    }

    fn value_inner(
        &mut self,
        ev: &mut Evaluator,
        v: &Value,
        p: Pos,
        depth: usize,
        out: &mut String,
    ) -> Result<()> {
        let ind = "  ".repeat(depth);
        let v = if self.strict {
            ev.force(v)?
        } else {
            match v.evaluated() {
                Some(v) => v,
                None => {
                    out.push_str(&format!("{ind}<unevaluated />\n"));
                    return Ok(());
                }
            }
        };
        match &v {
            Value::Null => out.push_str(&format!("{ind}<null />\n")),
            Value::Bool(b) => out.push_str(&format!("{ind}<bool value=\"{b}\" />\n")),
            Value::Int(i) => out.push_str(&format!("{ind}<int value=\"{i}\" />\n")),
            Value::Float(f) => {
                out.push_str(&format!("{ind}<float value=\"{}\" />\n", crate::print::fmt_float(*f)))
            }
            Value::String(s) => {
                if let Some(c) = &s.ctx {
                    self.ctx.extend(c.iter().cloned());
                }
                out.push_str(&format!("{ind}<string value=\"{}\" />\n", xml_escape(&s.s)));
            }
            Value::Path(s) => out.push_str(&format!("{ind}<path value=\"{}\" />\n", xml_escape(s))),
            // Containers are always opened and closed, even when empty, as Nix's XML writer does.
            Value::List(l) => {
                out.push_str(&format!("{ind}<list>\n"));
                for x in l.iter() {
                    self.value(ev, x, p, depth + 1, out)?;
                }
                out.push_str(&format!("{ind}</list>\n"));
            }
            Value::Attrs(a) => {
                if ev.is_derivation(a)? {
                    let mut attrs_s = String::new();
                    let mut drv_path = String::new();
                    for name in ["drvPath", "outPath"] {
                        let Some(x) = a.get_str(name).cloned() else { continue };
                        let x = if self.strict { Some(ev.force(&x)?) } else { x.evaluated() };
                        if let Some(Value::String(s)) = x {
                            attrs_s.push_str(&format!(" {name}=\"{}\"", xml_escape(&s.s)));
                            if name == "drvPath" {
                                drv_path = s.s.clone();
                            }
                        }
                    }
                    out.push_str(&format!("{ind}<derivation{attrs_s}>\n"));
                    if !drv_path.is_empty() && self.seen.insert(drv_path) {
                        self.attrs(ev, a, p, depth + 1, out)?;
                    } else {
                        out.push_str(&format!("{ind}  <repeated />\n"));
                    }
                    out.push_str(&format!("{ind}</derivation>\n"));
                } else {
                    out.push_str(&format!("{ind}<attrs>\n"));
                    self.attrs(ev, a, p, depth + 1, out)?;
                    out.push_str(&format!("{ind}</attrs>\n"));
                }
            }
            Value::Lambda(c) => {
                let pos = if self.location { xml_pos(c.def.pos) } else { String::new() };
                out.push_str(&format!("{ind}<function{pos}>\n"));
                match &c.def.param {
                    crate::compile::Param::Ident => {
                        let name = c.def.arg.map_or(String::new(), |n| xml_escape(n.as_str()));
                        out.push_str(&format!("{ind}  <varpat name=\"{name}\" />\n"));
                    }
                    crate::compile::Param::Formals { formals, ellipsis, .. } => {
                        out.push_str(&format!(
                            "{ind}  <attrspat{}{}>\n",
                            if *ellipsis { " ellipsis=\"1\"" } else { "" },
                            c.def
                                .arg
                                .map_or(String::new(), |n| format!(" name=\"{}\"", xml_escape(n.as_str())))
                        ));
                        let mut names: Vec<&str> = formals.iter().map(|(n, _)| n.as_str()).collect();
                        names.sort();
                        for n in names {
                            out.push_str(&format!("{ind}    <attr name=\"{}\" />\n", xml_escape(n)));
                        }
                        out.push_str(&format!("{ind}  </attrspat>\n"));
                    }
                }
                out.push_str(&format!("{ind}</function>\n"));
            }
            Value::PrimOp(_) | Value::PrimOpApp(_) | Value::Thunk(_) => {
                out.push_str(&format!("{ind}<unevaluated />\n"))
            }
        }
        Ok(())
    }

    fn attrs(
        &mut self,
        ev: &mut Evaluator,
        a: &Rc<Attrs>,
        p: Pos,
        depth: usize,
        out: &mut String,
    ) -> Result<()> {
        let ind = "  ".repeat(depth);
        for e in &a.entries {
            let pos = if self.location { xml_pos(e.pos) } else { String::new() };
            // Nix sorts an element's attributes by name: `name` comes between `line` and `path`.
            let open = match pos.find(" path=") {
                Some(i) => format!("{} name=\"{}\"{}", &pos[..i], xml_escape(e.name.as_str()), &pos[i..]),
                None => format!("{pos} name=\"{}\"", xml_escape(e.name.as_str())),
            };
            out.push_str(&format!("{ind}<attr{open}>\n"));
            self.value(ev, &e.value, p, depth + 1, out)?;
            out.push_str(&format!("{ind}</attr>\n"));
        }
        Ok(())
    }
}
