//! fhskit's own primops for its package set over Debian repositories (`pkgs/nixpkgs/`): `__fhskitDebianPackage
//! name arch` returns one pinned package's record (or null), and `__fhskitDebianSet arch f` the set of every
//! package name of `arch`, each attribute the lazy application `f name`. Both reach the repositories only through
//! `EvalIo` (the CLI answers from `fhskit.lock` and the verified index), so evaluation stays reproducible. They are
//! globals only (not in `builtins`), so the set of builtins stays Nix's.

use std::rc::Rc;

use crate::error::{ErrorKind, EvalError, Result};
use crate::eval::Evaluator;
use crate::source::Pos;
use crate::sym::{Sym, SymMap};
use crate::value::{Attr, Attrs, PrimFn, PrimOp, Value};

use super::mk_attrs;

/// The primops, registered as globals by `install`.
pub(crate) fn install(globals: &mut SymMap<Value>) {
    let table: [(&'static str, usize, PrimFn); 2] =
        [("fhskitDebianPackage", 2, prim_package), ("fhskitDebianSet", 2, prim_set)];
    for (name, arity, f) in table {
        globals.insert(Sym::new(&format!("__{name}")), Value::PrimOp(Rc::new(PrimOp { name, arity, f })));
    }
}

fn io_error(what: &str, e: std::io::Error, p: Pos) -> EvalError {
    EvalError::new(ErrorKind::Io, format!("{what}: {e}"), p)
}

fn prim_package(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let name = ev.force_str(&a[0], p)?;
    let arch = ev.force_str(&a[1], p)?;
    let found = ev
        .io
        .debian_package(&name, &arch)
        .map_err(|e| io_error(&format!("cannot look up the Debian package '{name}:{arch}'"), e, p))?;
    let Some(d) = found else { return Ok(Value::Null) };
    let depends = d.depends.iter().map(|k| Value::str(k.clone())).collect();
    Ok(mk_attrs(vec![
        ("name", Value::str(d.name)),
        ("version", Value::str(d.version)),
        ("architecture", Value::str(d.architecture)),
        ("url", Value::str(d.url)),
        ("sha256", Value::str(d.sha256)),
        ("size", Value::Int(i64::try_from(d.size).unwrap_or(i64::MAX))),
        ("component", Value::str(d.component)),
        ("description", Value::str(d.description)),
        ("depends", Value::list(depends)),
    ]))
}

fn prim_set(ev: &mut Evaluator, a: &[Value], p: Pos) -> Result<Value> {
    let arch = ev.force_str(&a[0], p)?;
    let f = ev.force(&a[1])?;
    let names = ev
        .io
        .debian_names(&arch)
        .map_err(|e| io_error(&format!("cannot list the Debian packages of {arch}"), e, p))?;
    let entries: Vec<Attr> = names
        .into_iter()
        .map(|n| {
            let name = Sym::new(&n);
            Attr { name, value: Value::apply_lazy(f.clone(), Value::str(n)), pos: Pos::none() }
        })
        .collect();
    Ok(Value::attrs(Attrs::from_unsorted(entries)))
}
