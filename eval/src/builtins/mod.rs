//! The builtins: registration of every primop under `builtins.<name>` and `__<name>` (plus the few global
//! names), and the primops on types, attribute sets, lists, numbers and control flow. Strings, files/store,
//! JSON/TOML/XML and derivations live in the sibling modules.

mod debian;
mod flake;
pub mod fs;
pub mod json;
pub mod strings;

use std::rc::Rc;

use crate::error::{ErrorKind, EvalError, Result};
use crate::eval::{Coerce, Evaluator, type_err};
use crate::source::Pos;
use crate::sym::{Sym, SymMap};
use crate::value::{Attr, Attrs, NixStr, PrimFn, PrimOp, Value};

/// `builtins.nixVersion`: the version of Nix whose behaviour the evaluator follows.
pub const NIX_VERSION: &str = "2.36.0";

/// Names reachable without `builtins.` (besides the `__`-prefixed forms).
const GLOBAL: &[&str] = &[
    "abort",
    "baseNameOf",
    "break",
    "derivation",
    "derivationStrict",
    "dirOf",
    "fetchTarball",
    "fromTOML",
    "import",
    "isNull",
    "map",
    "placeholder",
    "removeAttrs",
    "scopedImport",
    "throw",
    "toString",
];

pub(crate) fn install(ev: &mut Evaluator) {
    let mut table: Vec<(&'static str, usize, PrimFn)> = Vec::new();
    core_table(&mut table);
    strings::table(&mut table);
    fs::table(&mut table);
    json::table(&mut table);
    // As in Nix, the flake reference builtins exist only with the `flakes` experimental feature.
    if ev.settings.feature("flakes") {
        flake::table(&mut table);
    }
    table.push(("derivationStrict", 1, crate::derivation::derivation_strict));

    let mut attrs: Vec<Attr> = Vec::new();
    let mut globals: SymMap<Value> = SymMap::default();
    for (name, arity, f) in table {
        let v = Value::PrimOp(Rc::new(PrimOp { name, arity, f }));
        attrs.push(Attr { name: Sym::new(name), value: v.clone(), pos: Pos::none() });
        globals.insert(Sym::new(&format!("__{name}")), v.clone());
        if GLOBAL.contains(&name) {
            globals.insert(Sym::new(name), v);
        }
    }
    let s = &ev.settings;
    let mut nix_path = Vec::new();
    for (prefix, path) in &s.nix_path {
        nix_path.push(Value::attrs(Attrs::from_unsorted(vec![
            Attr { name: Sym::new("path"), value: Value::str(path.clone()), pos: Pos::none() },
            Attr { name: Sym::new("prefix"), value: Value::str(prefix.clone()), pos: Pos::none() },
        ])));
    }
    let consts: Vec<(&str, Value)> = vec![
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        ("null", Value::Null),
        ("currentSystem", Value::str(s.system.clone())),
        ("currentTime", Value::Int(s.current_time)),
        // The Nix whose language the evaluator follows: NixOS/nix 2.36.0 (at 88b09c64), whose language tests it
        // passes (docs/eval.md).
        ("nixVersion", Value::str(NIX_VERSION)),
        ("langVersion", Value::Int(6)),
        ("storeDir", Value::str(s.store_dir.clone())),
        ("nixPath", Value::list(nix_path)),
    ];
    for (name, v) in consts {
        if matches!(name, "true" | "false" | "null") {
            globals.insert(Sym::new(name), v.clone());
        } else {
            globals.insert(Sym::new(&format!("__{name}")), v.clone());
        }
        attrs.push(Attr { name: Sym::new(name), value: v, pos: Pos::none() });
    }
    // `builtins` contains itself: a set whose `builtins` attribute is filled in after it exists.
    let cell =
        Rc::new(crate::value::Thunk { state: std::cell::RefCell::new(crate::value::ThunkState::Blackhole) });
    attrs.push(Attr { name: Sym::new("builtins"), value: Value::Thunk(cell.clone()), pos: Pos::none() });
    let b = Value::attrs(Attrs::from_unsorted(attrs));
    *cell.state.borrow_mut() = crate::value::ThunkState::Done(b.clone());
    globals.insert(Sym::new("builtins"), b.clone());
    debian::install(&mut globals);
    ev.globals = globals;
    ev.builtins = b;
    // `derivation` is written in Nix on top of `derivationStrict`.
    match ev.eval_str(crate::derivation::DERIVATION_NIX, "/") {
        Ok(f) => {
            ev.globals.insert(Sym::new("derivation"), f.clone());
            if let Value::Attrs(a) = &ev.builtins {
                let mut a = (**a).clone();
                a = Attrs::update(
                    &a,
                    &Attrs {
                        entries: vec![Attr { name: Sym::new("derivation"), value: f, pos: Pos::none() }],
                    },
                );
                let b = Value::attrs(a);
                *cell.state.borrow_mut() = crate::value::ThunkState::Done(b.clone());
                ev.globals.insert(Sym::new("builtins"), b.clone());
                ev.builtins = b;
            }
        }
        Err(e) => tracing::error!("internal derivation function failed to compile: {}", e.msg),
    }
}

pub(crate) fn mk_attrs(entries: Vec<(&str, Value)>) -> Value {
    Value::attrs(Attrs::from_unsorted(
        entries.into_iter().map(|(n, v)| Attr { name: Sym::new(n), value: v, pos: Pos::none() }).collect(),
    ))
}

fn core_table(t: &mut Vec<(&'static str, usize, PrimFn)>) {
    t.extend_from_slice(&[
        ("abort", 1, prim_abort as PrimFn),
        ("throw", 1, prim_throw),
        ("add", 2, |ev, a, p| arith(ev, crate::compile::BinOp::Add, a, p)),
        ("sub", 2, |ev, a, p| arith(ev, crate::compile::BinOp::Sub, a, p)),
        ("mul", 2, |ev, a, p| arith(ev, crate::compile::BinOp::Mul, a, p)),
        ("div", 2, |ev, a, p| arith(ev, crate::compile::BinOp::Div, a, p)),
        ("bitAnd", 2, |ev, a, p| Ok(Value::Int(ev.force_int(&a[0], p)? & ev.force_int(&a[1], p)?))),
        ("bitOr", 2, |ev, a, p| Ok(Value::Int(ev.force_int(&a[0], p)? | ev.force_int(&a[1], p)?))),
        ("bitXor", 2, |ev, a, p| Ok(Value::Int(ev.force_int(&a[0], p)? ^ ev.force_int(&a[1], p)?))),
        ("lessThan", 2, |ev, a, p| Ok(Value::Bool(ev.less_than(&a[0], &a[1], p)?))),
        ("ceil", 1, |ev, a, p| float_to_int(ev.force_float(&a[0], p)?.ceil(), p)),
        ("floor", 1, |ev, a, p| float_to_int(ev.force_float(&a[0], p)?.floor(), p)),
        ("typeOf", 1, |ev, a, _| Ok(Value::str(ev.force(&a[0])?.type_of()))),
        ("isNull", 1, |ev, a, _| Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Null)))),
        ("isInt", 1, |ev, a, _| Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Int(_))))),
        ("isFloat", 1, |ev, a, _| Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Float(_))))),
        ("isBool", 1, |ev, a, _| Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Bool(_))))),
        ("isString", 1, |ev, a, _| Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::String(_))))),
        ("isPath", 1, |ev, a, _| Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Path(_))))),
        ("isList", 1, |ev, a, _| Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::List(_))))),
        ("isAttrs", 1, |ev, a, _| Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Attrs(_))))),
        ("isFunction", 1, |ev, a, _| Ok(Value::Bool(ev.force(&a[0])?.is_function()))),
        ("seq", 2, |ev, a, _| {
            ev.force(&a[0])?;
            ev.force(&a[1])
        }),
        ("deepSeq", 2, |ev, a, _| {
            ev.force_deep(&a[0])?;
            ev.force(&a[1])
        }),
        ("trace", 2, prim_trace),
        ("traceVerbose", 2, |ev, a, _| ev.force(&a[1])),
        ("warn", 2, prim_warn),
        ("break", 1, |ev, a, _| ev.force(&a[0])),
        ("addErrorContext", 2, |ev, a, p| {
            let r = ev.force(&a[1]);
            match r {
                Ok(v) => Ok(v),
                Err(e) => {
                    let msg = ev
                        .coerce_to_string(&a[0], p, Coerce { more: false, copy: false })
                        .map(|s| s.s)
                        .unwrap_or_default();
                    Err(e.add_trace(p, msg))
                }
            }
        }),
        ("tryEval", 1, prim_try_eval),
        ("attrNames", 1, |ev, a, p| {
            let s = ev.force_attrs(&a[0], p)?;
            Ok(Value::list(s.entries.iter().map(|x| Value::str(x.name.as_str())).collect()))
        }),
        ("attrValues", 1, |ev, a, p| {
            let s = ev.force_attrs(&a[0], p)?;
            Ok(Value::list(s.entries.iter().map(|x| x.value.clone()).collect()))
        }),
        ("getAttr", 2, |ev, a, p| {
            let n = Sym::new(&ev.force_str(&a[0], p)?);
            let s = ev.force_attrs(&a[1], p)?;
            match s.get(n) {
                Some(v) => Ok(v.clone()),
                None => Err(ev.missing_attr(&s, n, p)),
            }
        }),
        ("hasAttr", 2, |ev, a, p| {
            let n = Sym::new(&ev.force_str(&a[0], p)?);
            Ok(Value::Bool(ev.force_attrs(&a[1], p)?.get(n).is_some()))
        }),
        ("removeAttrs", 2, |ev, a, p| {
            let s = ev.force_attrs(&a[0], p)?;
            let l = ev.force_list(&a[1], p)?;
            let mut names = Vec::with_capacity(l.len());
            for x in l.iter() {
                names.push(Sym::new(&ev.force_str(x, p)?));
            }
            Ok(Value::attrs(Attrs {
                entries: s.entries.iter().filter(|e| !names.contains(&e.name)).cloned().collect(),
            }))
        }),
        ("listToAttrs", 1, prim_list_to_attrs),
        ("intersectAttrs", 2, |ev, a, p| {
            let x = ev.force_attrs(&a[0], p)?;
            let y = ev.force_attrs(&a[1], p)?;
            Ok(Value::attrs(Attrs {
                entries: y.entries.iter().filter(|e| x.get(e.name).is_some()).cloned().collect(),
            }))
        }),
        ("catAttrs", 2, |ev, a, p| {
            let n = Sym::new(&ev.force_str(&a[0], p)?);
            let l = ev.force_list(&a[1], p)?;
            let mut out = Vec::new();
            for x in l.iter() {
                if let Some(v) = ev.force_attrs(x, p)?.get(n) {
                    out.push(v.clone());
                }
            }
            Ok(Value::list(out))
        }),
        ("mapAttrs", 2, |ev, a, p| {
            let s = ev.force_attrs(&a[1], p)?;
            let f = a[0].clone();
            // The new attributes have no position (`unsafeGetAttrPos` gives null), as in Nix.
            let entries = s
                .entries
                .iter()
                .map(|e| Attr {
                    name: e.name,
                    value: Value::apply_lazy(
                        Value::apply_lazy(f.clone(), Value::str(e.name.as_str())),
                        e.value.clone(),
                    ),
                    pos: Pos::none(),
                })
                .collect();
            Ok(Value::attrs(Attrs { entries }))
        }),
        ("zipAttrsWith", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            let mut groups: std::collections::BTreeMap<Sym, Vec<Value>> = std::collections::BTreeMap::new();
            for x in l.iter() {
                for e in &ev.force_attrs(x, p)?.entries {
                    groups.entry(e.name).or_default().push(e.value.clone());
                }
            }
            let f = a[0].clone();
            let entries = groups
                .into_iter()
                .map(|(n, vs)| Attr {
                    name: n,
                    value: Value::apply_lazy(
                        Value::apply_lazy(f.clone(), Value::str(n.as_str())),
                        Value::list(vs),
                    ),
                    pos: Pos::none(),
                })
                .collect();
            Ok(Value::attrs(Attrs { entries }))
        }),
        ("functionArgs", 1, |ev, a, p| {
            let f = ev.force(&a[0])?;
            match &f {
                Value::Lambda(c) => match &c.def.param {
                    crate::compile::Param::Formals { formals, positions, .. } => {
                        Ok(Value::attrs(Attrs::from_unsorted(
                            formals
                                .iter()
                                .zip(positions)
                                .map(|((n, d), pos)| Attr {
                                    name: *n,
                                    value: Value::Bool(d.is_some()),
                                    pos: *pos,
                                })
                                .collect(),
                        )))
                    }
                    crate::compile::Param::Ident => Ok(Value::attrs(Attrs::default())),
                },
                Value::PrimOp(_) | Value::PrimOpApp(_) => Ok(Value::attrs(Attrs::default())),
                // Nix's own wording; a set with `__functor` is callable but still not accepted here.
                _ => Err(EvalError::eval("'functionArgs' requires a function", p)),
            }
        }),
        ("unsafeGetAttrPos", 2, |ev, a, p| {
            let n = Sym::new(&ev.force_str(&a[0], p)?);
            let s = ev.force_attrs(&a[1], p)?;
            Ok(match s.get_attr(n) {
                Some(at) => ev.pos_value(at.pos),
                None => Value::Null,
            })
        }),
        ("length", 1, |ev, a, p| Ok(Value::Int(ev.force_list(&a[0], p)?.len() as i64))),
        ("head", 1, |ev, a, p| {
            let l = ev.force_list(&a[0], p)?;
            l.first().cloned().ok_or_else(|| EvalError::eval("'builtins.head' called on an empty list", p))
        }),
        ("tail", 1, |ev, a, p| {
            let l = ev.force_list(&a[0], p)?;
            if l.is_empty() {
                return Err(EvalError::eval("'builtins.tail' called on an empty list", p));
            }
            Ok(Value::list(l[1..].to_vec()))
        }),
        ("elemAt", 2, |ev, a, p| {
            let l = ev.force_list(&a[0], p)?;
            let i = ev.force_int(&a[1], p)?;
            if i < 0 || i as usize >= l.len() {
                return Err(EvalError::eval(
                    format!("'builtins.elemAt' called with index {i} on a list of size {}", l.len()),
                    p,
                ));
            }
            Ok(l[i as usize].clone())
        }),
        ("elem", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            for x in l.iter() {
                if ev.equal(&a[0], x)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }),
        ("map", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            // Nix checks the function eagerly, but only when there is something to apply it to.
            if !l.is_empty() {
                ev.force_function(&a[0], p)?;
            }
            Ok(Value::list(l.iter().map(|x| Value::apply_lazy(a[0].clone(), x.clone())).collect()))
        }),
        ("filter", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            if l.is_empty() {
                return Ok(a[1].clone());
            }
            let f = ev.force_function(&a[0], p)?;
            let mut out = Vec::new();
            for x in l.iter() {
                let r = ev.call(f.clone(), x.clone(), p)?;
                if ev.force_bool(&r, p)? {
                    out.push(x.clone());
                }
            }
            Ok(Value::list(out))
        }),
        ("genList", 2, |ev, a, p| {
            let n = ev.force_int(&a[1], p)?;
            if n < 0 {
                return Err(EvalError::eval(format!("cannot create list of size {n}"), p));
            }
            Ok(Value::list((0..n).map(|i| Value::apply_lazy(a[0].clone(), Value::Int(i))).collect()))
        }),
        ("foldl'", 3, |ev, a, p| {
            let l = ev.force_list(&a[2], p)?;
            // The initial accumulator is forced only if nothing is applied to it; each result of `op` is forced.
            if l.is_empty() {
                return ev.force(&a[1]);
            }
            let f = ev.force(&a[0])?;
            let mut acc = a[1].clone();
            for x in l.iter() {
                let g = ev.call(f.clone(), acc, p)?;
                acc = ev.call(g, x.clone(), p)?;
            }
            Ok(acc)
        }),
        ("concatLists", 1, |ev, a, p| {
            let l = ev.force_list(&a[0], p)?;
            let mut out = Vec::new();
            for x in l.iter() {
                out.extend(ev.force_list(x, p)?.iter().cloned());
            }
            Ok(Value::list(out))
        }),
        ("concatMap", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            if l.is_empty() {
                return Ok(a[1].clone());
            }
            let f = ev.force_function(&a[0], p)?;
            let mut out = Vec::new();
            for x in l.iter() {
                let r = ev.call(f.clone(), x.clone(), p)?;
                out.extend(ev.force_list(&r, p)?.iter().cloned());
            }
            Ok(Value::list(out))
        }),
        ("any", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            let f = ev.force(&a[0])?;
            for x in l.iter() {
                let r = ev.call(f.clone(), x.clone(), p)?;
                if ev.force_bool(&r, p)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }),
        ("all", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            let f = ev.force(&a[0])?;
            for x in l.iter() {
                let r = ev.call(f.clone(), x.clone(), p)?;
                if !ev.force_bool(&r, p)? {
                    return Ok(Value::Bool(false));
                }
            }
            Ok(Value::Bool(true))
        }),
        ("sort", 2, prim_sort),
        ("partition", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            let f = ev.force(&a[0])?;
            let (mut right, mut wrong) = (Vec::new(), Vec::new());
            for x in l.iter() {
                let r = ev.call(f.clone(), x.clone(), p)?;
                if ev.force_bool(&r, p)? { right.push(x.clone()) } else { wrong.push(x.clone()) }
            }
            Ok(mk_attrs(vec![("right", Value::list(right)), ("wrong", Value::list(wrong))]))
        }),
        ("groupBy", 2, |ev, a, p| {
            let l = ev.force_list(&a[1], p)?;
            let f = ev.force(&a[0])?;
            let mut groups: std::collections::BTreeMap<Sym, Vec<Value>> = std::collections::BTreeMap::new();
            for x in l.iter() {
                let r = ev.call(f.clone(), x.clone(), p)?;
                let k = ev.force_str(&r, p)?;
                groups.entry(Sym::new(&k)).or_default().push(x.clone());
            }
            Ok(Value::attrs(Attrs {
                entries: groups
                    .into_iter()
                    .map(|(n, v)| Attr { name: n, value: Value::list(v), pos: Pos::none() })
                    .collect(),
            }))
        }),
        ("genericClosure", 1, prim_generic_closure),
        ("import", 1, prim_import),
        ("scopedImport", 2, prim_scoped_import),
        ("findFile", 2, fs::prim_find_file),
    ]);
}

fn float_to_int(f: f64, p: Pos) -> Result<Value> {
    if !(-9.223372036854776e18..9.223372036854776e18).contains(&f) {
        return Err(EvalError::eval(
            format!("float {} cannot be converted to an integer", crate::print::fmt_float(f)),
            p,
        ));
    }
    Ok(Value::Int(f as i64))
}

fn arith(ev: &mut Evaluator, op: crate::compile::BinOp, a: &[Value], p: Pos) -> Result<Value> {
    let x = ev.force(&a[0])?;
    let y = ev.force(&a[1])?;
    if !matches!(x, Value::Int(_) | Value::Float(_)) {
        return Err(type_err(&x, if matches!(y, Value::Float(_)) { "a float" } else { "an integer" }, p));
    }
    ev.arith(op, x, y, p)
}

fn prim_abort(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let s = ev.coerce_to_string(&a[0], p, Coerce { more: false, copy: false })?;
    Err(EvalError::new(
        ErrorKind::Abort,
        format!("evaluation aborted with the following error message: '{}'", s.s),
        p,
    ))
}

fn prim_throw(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let s = ev.coerce_to_string(&a[0], p, Coerce { more: false, copy: false })?;
    Err(EvalError::new(ErrorKind::Throw, s.s, p))
}

fn prim_trace(ev: &mut Evaluator, a: &[Value], _p: Pos) -> Result<Value> {
    let v = ev.force(&a[0])?;
    let msg = match &v {
        Value::String(s) => format!("trace: {}", s.s),
        v => format!("trace: {}", crate::print::print_trace(v)),
    };
    ev.io.trace(&msg);
    ev.force(&a[1])
}

fn prim_warn(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let s = ev.force_str(&a[0], p)?;
    ev.io.trace(&format!("evaluation warning: {s}"));
    if ev.settings.abort_on_warn {
        // Not catchable by tryEval, as in Nix: the point is the stack trace leading to the warning.
        return Err(EvalError::new(
            ErrorKind::Abort,
            "aborting to reveal stack trace of warning, as abort-on-warn is set",
            p,
        ));
    }
    ev.force(&a[1])
}

fn prim_try_eval(ev: &mut Evaluator, a: &[Value], _p: Pos) -> Result<Value> {
    match ev.force(&a[0]) {
        Ok(v) => Ok(mk_attrs(vec![("success", Value::Bool(true)), ("value", v)])),
        Err(e) if e.catchable() => {
            Ok(mk_attrs(vec![("success", Value::Bool(false)), ("value", Value::Bool(false))]))
        }
        Err(e) => Err(e),
    }
}

fn prim_list_to_attrs(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let l = ev.force_list(&a[0], p)?;
    let mut entries: Vec<Attr> = Vec::with_capacity(l.len());
    let (name_s, value_s) = (Sym::new("name"), Sym::new("value"));
    for x in l.iter() {
        let s = ev.force_attrs(x, p)?;
        let n = s.get(name_s).cloned().ok_or_else(|| EvalError::eval("attribute 'name' missing", p))?;
        let n = ev.force_str(&n, p)?;
        let v = s.get(value_s).cloned().ok_or_else(|| EvalError::eval("attribute 'value' missing", p))?;
        let pos = s.get_attr(value_s).map_or(Pos::none(), |at| at.pos);
        entries.push(Attr { name: Sym::new(&n), value: v, pos });
    }
    // The first occurrence of a name wins: a stable sort keeps definition order, then dedup keeps the first.
    entries.sort_by_key(|x| x.name);
    entries.dedup_by(|later, earlier| later.name == earlier.name);
    Ok(Value::attrs(Attrs { entries }))
}

fn prim_sort(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let l = ev.force_list(&a[1], p)?;
    if l.is_empty() {
        return Ok(a[1].clone());
    }
    let f = ev.force_function(&a[0], p)?;
    let mut items: Vec<Value> = l.iter().cloned().collect();
    for x in &mut items {
        *x = ev.force(x)?;
    }
    let less = |ev: &mut Evaluator, x: &Value, y: &Value| -> Result<bool> {
        let g = ev.call(f.clone(), x.clone(), p)?;
        let r = ev.call(g, y.clone(), p)?;
        ev.force_bool(&r, p)
    };
    // A stable merge sort that tolerates comparators that are not total orders and can fail.
    let mut buf = items.clone();
    let n = items.len();
    let mut width = 1;
    while width < n {
        let mut i = 0;
        while i < n {
            let mid = (i + width).min(n);
            let end = (i + 2 * width).min(n);
            let (mut l, mut r, mut k) = (i, mid, i);
            while l < mid && r < end {
                if less(ev, &items[r], &items[l])? {
                    buf[k] = items[r].clone();
                    r += 1;
                } else {
                    buf[k] = items[l].clone();
                    l += 1;
                }
                k += 1;
            }
            while l < mid {
                buf[k] = items[l].clone();
                l += 1;
                k += 1;
            }
            while r < end {
                buf[k] = items[r].clone();
                r += 1;
                k += 1;
            }
            i += 2 * width;
        }
        std::mem::swap(&mut items, &mut buf);
        width *= 2;
    }
    Ok(Value::list(items))
}

fn prim_generic_closure(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let args = ev.force_attrs(&a[0], p)?;
    let start = args
        .get_str("startSet")
        .cloned()
        .ok_or_else(|| EvalError::eval("attribute 'startSet' missing", p))?;
    let op = args
        .get_str("operator")
        .cloned()
        .ok_or_else(|| EvalError::eval("attribute 'operator' missing", p))?;
    let mut queue: std::collections::VecDeque<Value> = ev.force_list(&start, p)?.iter().cloned().collect();
    // The keys seen, kept sorted by Nix's ordering (which also rejects keys that cannot be compared, as Nix's
    // ordered set of keys does).
    let mut seen: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    let key_s = Sym::new("key");
    while let Some(item) = queue.pop_front() {
        let s = ev.force_attrs(&item, p)?;
        let k = s.get(key_s).cloned().ok_or_else(|| EvalError::eval("attribute 'key' required", p))?;
        let k = ev.force(&k)?;
        let (mut lo, mut hi) = (0, seen.len());
        let mut found = false;
        while lo < hi {
            let mid = (lo + hi) / 2;
            match ev.compare(&k, &seen[mid], p)? {
                std::cmp::Ordering::Less => hi = mid,
                std::cmp::Ordering::Greater => lo = mid + 1,
                std::cmp::Ordering::Equal => {
                    found = true;
                    break;
                }
            }
        }
        if found {
            continue;
        }
        seen.insert(lo, k);
        out.push(item.clone());
        let next = ev.call_n(&op, &[item], p)?;
        queue.extend(ev.force_list(&next, p)?.iter().cloned());
    }
    Ok(Value::list(out))
}

/// The path an `import`-like builtin refers to (paths, strings, and derivations via `outPath`).
pub(crate) fn path_arg(ev: &mut Evaluator, v: &Value, p: Pos) -> Result<String> {
    let v = ev.force(v)?;
    if let Value::Path(s) = &v {
        return Ok(s.to_string());
    }
    let s = ev.coerce_to_string(&v, p, Coerce { more: false, copy: false })?;
    if !s.s.starts_with('/') {
        return Err(EvalError::eval(format!("string '{}' doesn't represent an absolute path", s.s), p));
    }
    Ok(s.s)
}

fn prim_import(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let path = path_arg(ev, &a[0], p)?;
    if let Some(rest) = path.strip_prefix(fs::COREPKGS) {
        return fs::import_corepkg(ev, rest, p);
    }
    ev.import(&path, p).map_err(|e| e.add_trace(p, format!("while importing '{path}'")))
}

fn prim_scoped_import(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let scope = ev.force_attrs(&a[0], p)?;
    let path = path_arg(ev, &a[1], p)?;
    let file = ev.resolve_import_path(&path);
    let names: Vec<Sym> = scope.entries.iter().map(|e| e.name).collect();
    let e = ev.parse_file(&file, p, Some(&names))?;
    let outer = Rc::new(crate::value::Env {
        vals: crate::value::Slots::Many(scope.entries.iter().map(|e| e.value.clone()).collect()),
        parent: None,
        is_with: false,
    });
    ev.eval(&e, &outer)
}

pub(crate) fn str_value(s: NixStr) -> Value {
    Value::String(Rc::new(s))
}
