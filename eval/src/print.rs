//! Printing values as `nix-instantiate --eval` does (Nix's "ambiguous" printer), plus Nix's float and string
//! literal formats that `toString`, `toJSON` and error messages share.

use rustc_hash::FxHashSet as HashSet;
use std::fmt::Write;
use std::rc::Rc;

use crate::value::{ThunkState, Value};

/// Formats a float as C++ iostreams do by default (`%g`, 6 significant digits).
pub fn fmt_float(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if f.is_infinite() {
        return if f < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let e = format!("{f:.5e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&x) {
        let s = format!("{:.*}", (5 - x) as usize, f);
        strip_zeros(&s)
    } else {
        let m = strip_zeros(mant);
        format!("{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs())
    }
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
}

/// A Nix string literal for `s`.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether an attribute name can be printed without quotes.
pub fn is_plain_ident(s: &str) -> bool {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    // Current Nix's reserved words; `or` is not one (it is a valid attribute name), so it stays bare.
    if matches!(s, "if" | "then" | "else" | "assert" | "with" | "let" | "in" | "rec" | "inherit") {
        return false;
    }
    cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '\'')
}

pub fn attr_name(s: &str) -> String {
    if is_plain_ident(s) { s.to_string() } else { quote_string(s) }
}

/// Prints a value the way `nix-instantiate --eval` does; unevaluated parts print as `<CODE>` and a set or list
/// met a second time as `«repeated»`.
pub fn print_value(v: &Value) -> String {
    let mut out = String::new();
    let mut seen = HashSet::default();
    print_into(v, &mut out, &mut seen, None, false);
    out
}

/// Prints a value as `builtins.trace` shows it: as `print_value`, but an unevaluated part is `«thunk»`, or
/// `«potential infinite recursion»` while it is being evaluated.
pub fn print_trace(v: &Value) -> String {
    let mut out = String::new();
    let mut seen = HashSet::default();
    print_into(v, &mut out, &mut seen, None, true);
    out
}

/// `holder`: the thunk a value was reached through. Nix keeps lists of one or two elements inside the value
/// that holds them, so such a list is "the same" (`«repeated»`) only when reached through the same value.
fn print_into(v: &Value, out: &mut String, seen: &mut HashSet<usize>, holder: Option<usize>, trace: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&fmt_float(*f)),
        Value::String(s) => out.push_str(&quote_string(&s.s)),
        Value::Path(p) => out.push_str(p),
        Value::Attrs(a) => {
            if !a.is_empty() && !seen.insert(Rc::as_ptr(a) as usize) {
                out.push_str("«repeated»");
                return;
            }
            out.push_str("{ ");
            for attr in &a.entries {
                out.push_str(&attr_name(attr.name.as_str()));
                out.push_str(" = ");
                print_into(&attr.value, out, seen, None, trace);
                out.push_str("; ");
            }
            out.push('}');
        }
        Value::List(l) => {
            let id = match holder {
                Some(h) if l.len() <= 2 => h,
                _ => Rc::as_ptr(l) as usize,
            };
            if !l.is_empty() && !seen.insert(id) {
                out.push_str("«repeated»");
                return;
            }
            out.push_str("[ ");
            for x in l.iter() {
                print_into(x, out, seen, None, trace);
                out.push(' ');
            }
            out.push(']');
        }
        Value::Lambda(_) => out.push_str("<LAMBDA>"),
        Value::PrimOp(_) => out.push_str("<PRIMOP>"),
        Value::PrimOpApp(_) => out.push_str("<PRIMOP-APP>"),
        Value::Thunk(t) => match &*t.state.borrow() {
            ThunkState::Done(v) => print_into(v, out, seen, Some(Rc::as_ptr(t) as usize), trace),
            ThunkState::Blackhole if trace => out.push_str("«potential infinite recursion»"),
            _ if trace => out.push_str("«thunk»"),
            _ => out.push_str("<CODE>"),
        },
    }
}

/// A short rendering for error messages (`expected a set but found an integer: 1`).
pub fn short(v: &Value) -> String {
    match v {
        Value::Attrs(a) => {
            if a.is_empty() {
                return "{ }".into();
            }
            let mut s = String::from("{ ");
            for attr in a.entries.iter().take(3) {
                let _ = write!(s, "{} = {}; ", attr_name(attr.name.as_str()), short_inner(&attr.value));
            }
            if a.len() > 3 {
                s.push('«');
                let _ = write!(s, "{} attributes elided", a.len() - 3);
                s.push_str("» ");
            }
            s.push('}');
            s
        }
        Value::List(l) => {
            if l.is_empty() {
                return "[ ]".into();
            }
            let mut s = String::from("[ ");
            for x in l.iter().take(3) {
                let _ = write!(s, "{} ", short_inner(x));
            }
            if l.len() > 3 {
                let _ = write!(s, "«{} items elided» ", l.len() - 3);
            }
            s.push(']');
            s
        }
        Value::Lambda(c) => {
            let mut s = String::from("«lambda");
            if let Some(n) = c.def.name {
                let _ = write!(s, " {n}");
            }
            if let Some(loc) = c.def.pos.resolve() {
                let _ = write!(s, " @ {loc}");
            }
            s.push('»');
            s
        }
        Value::PrimOp(p) => format!("«primop {}»", p.name),
        Value::PrimOpApp(p) => format!("«partially applied primop {}»", p.op.name),
        Value::Thunk(t) => match &*t.state.borrow() {
            ThunkState::Done(v) => short(v),
            _ => "«thunk»".into(),
        },
        v => print_value(v),
    }
}

fn short_inner(v: &Value) -> String {
    match v.evaluated() {
        Some(Value::Attrs(_)) => "{ … }".into(),
        Some(Value::List(_)) => "[ … ]".into(),
        Some(v) => short(&v),
        None => "«thunk»".into(),
    }
}
