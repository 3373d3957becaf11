//! The lazy evaluator: walks compiled `Expr` trees in environments, forces thunks (with blackholing for infinite
//! recursion), applies functions and primops, and implements the operators, equality, ordering and string
//! coercion that the builtins share.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

use crate::compile::{self, AttrName, AttrValue, BinOp, CompileEnv, Expr, Param};
use crate::error::{ErrorKind, EvalError, Result};
use crate::io::EvalIo;
pub use crate::settings::Settings;
use crate::source::Pos;
use crate::sym::{Sym, SymMap};
use crate::value::{
    Attr, Attrs, Closure, Context, Env, NixStr, PrimOpApp, Slots, StrContext, Thunk, ThunkState, Value,
};

thread_local! {
    static STACK_BUDGET: Cell<usize> = const { Cell::new(1 << 20) };
}

/// Runs `f` on a thread with a large stack (1 GiB of address space, touched only as used), so that deep but finite
/// recursion works; the evaluator measures its own stack use and reports overflow as an error long before the end.
pub fn with_big_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> std::io::Result<R> {
    const SIZE: usize = 1 << 30;
    let h = std::thread::Builder::new().stack_size(SIZE).spawn(move || {
        STACK_BUDGET.with(|b| b.set(SIZE - (16 << 20)));
        f()
    })?;
    h.join().map_err(|_| std::io::Error::other("evaluation thread panicked"))
}

fn stack_addr() -> usize {
    let x = 0u8;
    std::hint::black_box(&x) as *const u8 as usize
}

/// How a value may be turned into a string.
#[derive(Clone, Copy, Debug)]
pub struct Coerce {
    /// `toString`-style: also null, bools, numbers and lists.
    pub more: bool,
    /// Paths are copied to the store and replaced by their store path.
    pub copy: bool,
}

pub struct Evaluator {
    pub io: Box<dyn EvalIo>,
    pub settings: Settings,
    pub globals: SymMap<Value>,
    pub builtins: Value,
    import_cache: HashMap<String, Value>,
    stack_base: usize,
    stack_budget: usize,
    /// hashDerivationModulo results by `.drv` path.
    pub drv_hashes: HashMap<String, [u8; 32]>,
    /// The output names of the derivations this evaluation made, by `.drv` path.
    pub drv_outputs: HashMap<String, Rc<[String]>>,
    /// The references of the store objects this evaluation made (`.drv` files and `toFile` results), for the
    /// closures that a derivation's `drvPath` in another derivation brings in.
    pub store_refs: HashMap<String, Rc<[String]>>,
    /// Store paths computed for source paths, so each is hashed once.
    pub path_cache: HashMap<String, String>,
    pub call_depth: usize,
    /// What each search path entry resolved to (a directory, or nothing), so that a URL is fetched once a run.
    pub(crate) search_path_resolved: HashMap<String, Option<String>>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").field("settings", &self.settings).finish_non_exhaustive()
    }
}

pub(crate) fn type_err(v: &Value, expected: &str, pos: Pos) -> EvalError {
    EvalError::eval(
        format!("expected {expected} but found {}: {}", v.show_type(), crate::print::short(v)),
        pos,
    )
}

impl Evaluator {
    pub fn new(io: Box<dyn EvalIo>, settings: Settings) -> Evaluator {
        let mut ev = Evaluator {
            io,
            settings,
            globals: SymMap::default(),
            builtins: Value::Null,
            import_cache: HashMap::new(),
            stack_base: stack_addr(),
            stack_budget: STACK_BUDGET.with(|b| b.get()),
            drv_hashes: HashMap::new(),
            drv_outputs: HashMap::new(),
            store_refs: HashMap::new(),
            path_cache: HashMap::new(),
            call_depth: 0,
            search_path_resolved: HashMap::new(),
        };
        crate::builtins::install(&mut ev);
        ev
    }

    /// Counts one more level of nesting (a call, a level of `toJSON`, `toXML` or deep forcing): deeper than
    /// `max-call-depth`, or near the end of the native stack, is Nix's "stack overflow" error. Pair with `leave`.
    pub fn enter(&mut self, pos: Pos) -> Result<()> {
        if self.call_depth > self.settings.max_call_depth {
            return Err(EvalError::new(
                ErrorKind::StackOverflow,
                "stack overflow; max-call-depth exceeded",
                pos,
            ));
        }
        self.check_stack(pos)?;
        self.call_depth += 1;
        Ok(())
    }

    pub fn leave(&mut self) {
        self.call_depth -= 1;
    }

    fn check_stack(&self, pos: Pos) -> Result<()> {
        let used = self.stack_base.abs_diff(stack_addr());
        if used > self.stack_budget {
            return Err(EvalError::new(
                ErrorKind::StackOverflow,
                "stack overflow; max-call-depth exceeded",
                pos,
            ));
        }
        Ok(())
    }

    /// Parses and compiles `text` named `name`, relative paths resolving against `base_dir`.
    pub fn compile(&mut self, name: &str, text: &str, base_dir: &str, extra: Option<&[Sym]>) -> Result<Expr> {
        let home = self.io.get_env("HOME");
        let s = &self.settings;
        let cenv = CompileEnv {
            globals: &self.globals,
            extra_scope: extra,
            base_dir,
            home: home.as_deref(),
            pipe_operators: s.feature("pipe-operators"),
            lints: compile::Lints {
                absolute_paths: s.lint_absolute_paths,
                short_paths: s.lint_short_paths,
                url_literals: s.lint_url_literals,
            },
            warnings: Default::default(),
        };
        let e = compile::compile(name, text, &cenv);
        for (msg, pos) in cenv.warnings.take() {
            self.io.trace(&crate::error::render_warning("warning: ", &msg, pos));
        }
        e
    }

    /// Evaluates an expression given as text (`-E`), relative paths resolving against `base_dir`.
    pub fn eval_str(&mut self, text: &str, base_dir: &str) -> Result<Value> {
        let e = self.compile("«string»", text, base_dir, None)?;
        let env = Rc::new(Env::root());
        self.eval(&e, &env)
    }

    /// Evaluates a file (a directory means its `default.nix`), as `import` does.
    pub fn eval_file(&mut self, path: &str) -> Result<Value> {
        self.import(path, Pos::none())
    }

    pub fn resolve_import_path(&self, path: &str) -> String {
        if let Ok(crate::io::FileKind::Directory) = self.io.file_kind(path) {
            format!("{}/default.nix", path.trim_end_matches('/'))
        } else if let Ok(crate::io::FileKind::Symlink) = self.io.file_kind(path) {
            match self.io.canonicalize(path) {
                Ok(p) if matches!(self.io.file_kind(&p), Ok(crate::io::FileKind::Directory)) => {
                    format!("{p}/default.nix")
                }
                _ => path.to_string(),
            }
        } else {
            path.to_string()
        }
    }

    pub fn import(&mut self, path: &str, pos: Pos) -> Result<Value> {
        let file = self.resolve_import_path(path);
        if let Some(v) = self.import_cache.get(&file) {
            return Ok(v.clone());
        }
        let e = self.parse_file(&file, pos, None)?;
        let env = Rc::new(Env::root());
        let v = self.eval(&e, &env)?;
        self.import_cache.insert(file, v.clone());
        Ok(v)
    }

    pub fn parse_file(&mut self, file: &str, pos: Pos, extra: Option<&[Sym]>) -> Result<Expr> {
        let bytes = self.io.read_file(file).map_err(|e| {
            // Current Nix looks the path up before reading it, so a missing file is reported as such.
            let msg = if e.kind() == std::io::ErrorKind::NotFound {
                format!("path '{file}' does not exist")
            } else {
                format!("opening file '{file}': {}", io_reason(&e))
            };
            EvalError::new(ErrorKind::Io, msg, pos)
        })?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let dir = match file.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => file[..i].to_string(),
            None => ".".to_string(),
        };
        self.compile(file, &text, &dir, extra)
    }

    // ----- forcing -------------------------------------------------------------------------------------------

    #[inline]
    pub fn force(&mut self, v: &Value) -> Result<Value> {
        match v {
            Value::Thunk(t) => self.force_thunk(t),
            v => Ok(v.clone()),
        }
    }

    fn force_thunk(&mut self, t: &Rc<Thunk>) -> Result<Value> {
        let st = {
            let mut b = t.state.borrow_mut();
            if let ThunkState::Done(v) = &*b {
                return Ok(v.clone());
            }
            std::mem::replace(&mut *b, ThunkState::Blackhole)
        };
        let r = match &st {
            ThunkState::Pending(e, env) => self.eval(e, env),
            ThunkState::Apply(f, a) => {
                let f = self.force(f);
                match f {
                    Ok(f) => self.call(f, a.clone(), Pos::none()),
                    Err(e) => Err(e),
                }
            }
            ThunkState::Select(v, name) => {
                self.force_attrs(v, Pos::none()).and_then(|a| match a.get(*name) {
                    Some(x) => {
                        let x = x.clone();
                        self.force(&x)
                    }
                    None => Err(EvalError::eval(format!("attribute '{name}' missing"), Pos::none())),
                })
            }
            ThunkState::Blackhole => {
                return Err(EvalError::new(
                    ErrorKind::InfiniteRecursion,
                    "infinite recursion encountered",
                    Pos::none(),
                ));
            }
            ThunkState::Done(_) => unreachable!("handled above"),
        };
        match r {
            Ok(v) => {
                *t.state.borrow_mut() = ThunkState::Done(v.clone());
                Ok(v)
            }
            Err(e) => {
                *t.state.borrow_mut() = st;
                Err(e)
            }
        }
    }

    pub fn force_attrs(&mut self, v: &Value, pos: Pos) -> Result<Rc<Attrs>> {
        match self.force(v)? {
            Value::Attrs(a) => Ok(a),
            v => Err(type_err(&v, "a set", pos)),
        }
    }

    pub fn force_list(&mut self, v: &Value, pos: Pos) -> Result<Rc<Vec<Value>>> {
        match self.force(v)? {
            Value::List(l) => Ok(l),
            v => Err(type_err(&v, "a list", pos)),
        }
    }

    pub fn force_int(&mut self, v: &Value, pos: Pos) -> Result<i64> {
        match self.force(v)? {
            Value::Int(i) => Ok(i),
            v => Err(type_err(&v, "an integer", pos)),
        }
    }

    pub fn force_float(&mut self, v: &Value, pos: Pos) -> Result<f64> {
        match self.force(v)? {
            Value::Int(i) => Ok(i as f64),
            Value::Float(f) => Ok(f),
            v => Err(type_err(&v, "a float", pos)),
        }
    }

    pub fn force_bool(&mut self, v: &Value, pos: Pos) -> Result<bool> {
        match self.force(v)? {
            Value::Bool(b) => Ok(b),
            v => Err(type_err(&v, "a Boolean", pos)),
        }
    }

    pub fn force_function(&mut self, v: &Value, pos: Pos) -> Result<Value> {
        let f = self.force(v)?;
        match &f {
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => Ok(f),
            Value::Attrs(a) if a.get_str("__functor").is_some() => Ok(f),
            _ => Err(type_err(&f, "a function", pos)),
        }
    }

    /// A string value (no coercion), with its context.
    pub fn force_nstr(&mut self, v: &Value, pos: Pos) -> Result<Rc<NixStr>> {
        match self.force(v)? {
            Value::String(s) => Ok(s),
            v => Err(type_err(&v, "a string", pos)),
        }
    }

    pub fn force_str(&mut self, v: &Value, pos: Pos) -> Result<String> {
        Ok(self.force_nstr(v, pos)?.s.clone())
    }

    /// Forces a value completely (`deepSeq`, `--strict`).
    pub fn force_deep(&mut self, v: &Value) -> Result<()> {
        let mut seen = rustc_hash::FxHashSet::default();
        self.force_deep_inner(v, &mut seen)
    }

    fn force_deep_inner(&mut self, v: &Value, seen: &mut rustc_hash::FxHashSet<usize>) -> Result<()> {
        self.enter(Pos::none())?;
        let r = self.force_deep_value(v, seen);
        self.leave();
        r
    }

    fn force_deep_value(&mut self, v: &Value, seen: &mut rustc_hash::FxHashSet<usize>) -> Result<()> {
        match self.force(v)? {
            Value::Attrs(a) => {
                if !seen.insert(Rc::as_ptr(&a) as usize) {
                    return Ok(());
                }
                for attr in &a.entries {
                    self.force_deep_inner(&attr.value, seen).map_err(|e| {
                        e.add_trace(attr.pos, format!("while evaluating the attribute '{}'", attr.name))
                    })?;
                }
            }
            Value::List(l) => {
                if !seen.insert(Rc::as_ptr(&l) as usize) {
                    return Ok(());
                }
                for x in l.iter() {
                    self.force_deep_inner(x, seen)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ----- evaluation ----------------------------------------------------------------------------------------

    /// A lazy value for `e` in `env`: constants and variables need no thunk.
    #[inline]
    pub fn thunk(&self, e: &Rc<Expr>, env: &Rc<Env>) -> Value {
        match &**e {
            Expr::Const(v) => v.clone(),
            Expr::Var(up, idx) => lookup(env, *up, *idx),
            Expr::Lambda(def) => Value::Lambda(Rc::new(Closure { def: def.clone(), env: env.clone() })),
            _ => Value::pending(e.clone(), env.clone()),
        }
    }

    pub fn eval(&mut self, e: &Expr, env: &Rc<Env>) -> Result<Value> {
        match e {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Var(up, idx) => {
                let v = slot(env, *up, *idx);
                self.force(v)
            }
            Expr::WithVar { name, up, pos } => self.with_lookup(env, *name, *up, *pos),
            Expr::Attrs(a) => self.eval_attrs(a, env),
            Expr::Let(l) => {
                let env2 = self.rec_env(&l.slots, env, false);
                self.eval(&l.body, &env2)
            }
            Expr::List(items) => Ok(Value::list(items.iter().map(|i| self.thunk(i, env)).collect())),
            Expr::Select(s) => self.eval_select(s, env),
            Expr::HasAttr(inner, path) => {
                let mut v = self.eval(inner, env)?;
                for (i, name) in path.iter().enumerate() {
                    let name = self.attr_name(name, env)?;
                    let Value::Attrs(a) = &v else { return Ok(Value::Bool(false)) };
                    match a.get(name) {
                        Some(x) => {
                            if i + 1 < path.len() {
                                let x = x.clone();
                                v = self.force(&x)?;
                            }
                        }
                        None => return Ok(Value::Bool(false)),
                    }
                }
                Ok(Value::Bool(true))
            }
            Expr::Lambda(def) => Ok(Value::Lambda(Rc::new(Closure { def: def.clone(), env: env.clone() }))),
            Expr::Call(f, args, pos) => {
                self.check_stack(*pos)?;
                let mut fv = self.eval(f, env)?;
                for a in args {
                    let arg = self.thunk(a, env);
                    fv = self.call(fv, arg, *pos)?;
                }
                Ok(fv)
            }
            Expr::If(b, pos) => {
                let c = self.eval(&b.0, env)?;
                let c = match c {
                    Value::Bool(c) => c,
                    v => {
                        return Err(type_err(&v, "a Boolean", *pos)
                            .add_trace(*pos, "while evaluating a branch condition"));
                    }
                };
                self.eval(if c { &b.1 } else { &b.2 }, env)
            }
            Expr::Assert(b, pos, text) => {
                let c = self.eval(&b.0, env)?;
                match c {
                    Value::Bool(true) => self.eval(&b.1, env),
                    Value::Bool(false) => {
                        Err(EvalError::new(ErrorKind::Assert, format!("assertion '{text}' failed"), *pos))
                    }
                    v => Err(type_err(&v, "a Boolean", *pos)),
                }
            }
            Expr::With(b) => {
                let attrs = self.thunk(&b.0, env);
                let env2 = Rc::new(Env { vals: Slots::One(attrs), parent: Some(env.clone()), is_with: true });
                self.eval(&b.1, &env2)
            }
            Expr::Bin(op, b, pos) => self.binop(*op, &b.0, &b.1, env, *pos),
            Expr::Not(inner, pos) => {
                let v = self.eval(inner, env)?;
                match v {
                    Value::Bool(b) => Ok(Value::Bool(!b)),
                    v => Err(type_err(&v, "a Boolean", *pos)),
                }
            }
            Expr::Neg(inner, pos) => {
                let v = self.eval(inner, env)?;
                self.arith(BinOp::Sub, Value::Int(0), v, *pos)
            }
            Expr::Interp(parts, pos) => {
                let mut vals = Vec::with_capacity(parts.len());
                for p in parts {
                    vals.push(self.eval(p, env)?);
                }
                self.concat(vals, *pos)
            }
            Expr::CurPos(pos) => Ok(self.pos_value(*pos)),
        }
    }

    pub fn pos_value(&self, pos: Pos) -> Value {
        match pos.resolve() {
            Some(loc) => Value::attrs(Attrs::from_unsorted(vec![
                Attr { name: Sym::new("column"), value: Value::Int(loc.column as i64), pos: Pos::none() },
                Attr { name: Sym::new("file"), value: Value::str(loc.file.to_string()), pos: Pos::none() },
                Attr { name: Sym::new("line"), value: Value::Int(loc.line as i64), pos: Pos::none() },
            ])),
            None => Value::Null,
        }
    }

    fn with_lookup(&mut self, env: &Rc<Env>, name: Sym, up: u32, pos: Pos) -> Result<Value> {
        let mut e = env;
        for _ in 0..up {
            e = e.parent.as_ref().unwrap_or_else(|| unreachable!("compiler counted environments"));
        }
        let mut cur = Some(e.clone());
        while let Some(c) = cur {
            if c.is_with {
                let attrs = self.force_attrs(&c.vals[0], pos)?;
                if let Some(v) = attrs.get(name) {
                    let v = v.clone();
                    return self.force(&v);
                }
            }
            cur = c.parent.clone();
        }
        Err(EvalError::eval(format!("undefined variable '{name}'"), pos))
    }

    /// A recursive environment for `let`/`rec`: each slot may refer to all slots. With `all_thunks` every slot is
    /// a thunk of its own, so that `__overrides` can redirect it.
    fn rec_env(&self, slots: &[Rc<Expr>], parent: &Rc<Env>, all_thunks: bool) -> Rc<Env> {
        let mut vals = Vec::with_capacity(slots.len());
        let mut pending = Vec::new();
        for (i, s) in slots.iter().enumerate() {
            match &**s {
                Expr::Const(v) if !all_thunks => vals.push(v.clone()),
                Expr::Var(up, idx) if *up > 0 && !all_thunks => vals.push(lookup(parent, up - 1, *idx)),
                _ => {
                    let t = Rc::new(Thunk { state: std::cell::RefCell::new(ThunkState::Blackhole) });
                    vals.push(Value::Thunk(t.clone()));
                    pending.push((i, t));
                }
            }
        }
        let env = Rc::new(Env { vals: Slots::Many(vals), parent: Some(parent.clone()), is_with: false });
        for (i, t) in pending {
            let st = match &*slots[i] {
                Expr::Lambda(def) => {
                    ThunkState::Done(Value::Lambda(Rc::new(Closure { def: def.clone(), env: env.clone() })))
                }
                _ => ThunkState::Pending(slots[i].clone(), env.clone()),
            };
            *t.state.borrow_mut() = st;
        }
        env
    }

    /// `rec { …; __overrides = { … }; }`: the attributes of `__overrides` replace those of the set, also where the
    /// set's own attributes refer to them (which `//` cannot do), and are added when new.
    fn apply_overrides(
        &mut self,
        a: &compile::AttrsExpr,
        env2: &Rc<Env>,
        entries: &mut Vec<Attr>,
        overrides: Sym,
    ) -> Result<()> {
        let ov = entries.iter().find(|e| e.name == overrides).map(|e| e.value.clone()).unwrap_or(Value::Null);
        let ov_attrs = self.force_attrs(&ov, Pos::none())?;
        for o in &ov_attrs.entries {
            let slot = a.statics.iter().find(|(n, _, _)| *n == o.name).and_then(|(_, v, _)| match v {
                AttrValue::Slot(i) => Some(*i as usize),
                AttrValue::Expr(_) => None,
            });
            if let Some(i) = slot
                && let Value::Thunk(t) = &env2.vals[i]
            {
                // The slot's thunk now selects the override, so references through the environment see it.
                *t.state.borrow_mut() = ThunkState::Select(ov.clone(), o.name);
            }
            match entries.iter_mut().find(|e| e.name == o.name) {
                Some(e) if slot.is_none() => e.value = o.value.clone(),
                Some(_) => {}
                None => {
                    let i = entries.partition_point(|x| x.name < o.name);
                    entries.insert(i, Attr { name: o.name, value: o.value.clone(), pos: o.pos });
                }
            }
        }
        Ok(())
    }

    fn eval_attrs(&mut self, a: &compile::AttrsExpr, env: &Rc<Env>) -> Result<Value> {
        // Found by text, not by interning a symbol, to keep plain sets cheap.
        let overrides = if a.has_env {
            a.statics.iter().find(|(n, _, _)| n.as_str() == "__overrides").map(|(n, _, _)| *n)
        } else {
            None
        };
        let env2 = if a.has_env { self.rec_env(&a.slots, env, overrides.is_some()) } else { env.clone() };
        let mut entries: Vec<Attr> = Vec::with_capacity(a.statics.len() + a.dynamics.len());
        for (name, v, pos) in &a.statics {
            let value = match v {
                AttrValue::Slot(i) => env2.vals[*i as usize].clone(),
                AttrValue::Expr(e) => self.thunk(e, &env2),
            };
            entries.push(Attr { name: *name, value, pos: *pos });
        }
        if let Some(overrides) = overrides {
            self.apply_overrides(a, &env2, &mut entries, overrides)?;
        }
        if a.dynamics.is_empty() {
            return Ok(Value::attrs(Attrs { entries }));
        }
        let mut attrs = Attrs { entries };
        for (name_e, v, pos) in &a.dynamics {
            let n = self.eval(name_e, &env2)?;
            let name = match n {
                Value::Null => continue,
                Value::String(s) => Sym::new(no_context(&s, *pos)?),
                v => return Err(type_err(&v, "a string", *pos)),
            };
            if let Some(prev) = attrs.get_attr(name) {
                let prev = prev.pos;
                return Err(EvalError::eval(
                    format!(
                        "dynamic attribute '{name}' already defined at {}",
                        prev.resolve().map_or_else(|| "«unknown»".to_string(), |l| l.to_string())
                    ),
                    *pos,
                ));
            }
            let value = self.thunk(v, &env2);
            let i = attrs.entries.partition_point(|x| x.name < name);
            attrs.entries.insert(i, Attr { name, value, pos: *pos });
        }
        Ok(Value::attrs(attrs))
    }

    fn attr_name(&mut self, n: &AttrName, env: &Rc<Env>) -> Result<Sym> {
        match n {
            AttrName::Static(s) => Ok(*s),
            AttrName::Dynamic(e) => {
                let v = self.eval(e, env)?;
                match v {
                    Value::String(s) => Ok(Sym::new(no_context(&s, Pos::none())?)),
                    v => Err(type_err(&v, "a string", Pos::none())),
                }
            }
        }
    }

    fn eval_select(&mut self, s: &compile::SelectExpr, env: &Rc<Env>) -> Result<Value> {
        let mut v = self.eval(&s.e, env)?;
        for name in &s.path {
            let name = self.attr_name(name, env)?;
            match &v {
                Value::Attrs(a) => match a.get(name) {
                    Some(x) => {
                        let x = x.clone();
                        let pos = a.get_attr(name).map_or(s.pos, |a| a.pos);
                        v = self.force(&x).map_err(|e| {
                            e.add_trace(pos, format!("while evaluating the attribute '{name}'"))
                        })?;
                    }
                    None => {
                        if let Some(d) = &s.default {
                            return self.eval(d, env);
                        }
                        return Err(self.missing_attr(a, name, s.pos));
                    }
                },
                other => {
                    if let Some(d) = &s.default {
                        return self.eval(d, env);
                    }
                    return Err(type_err(other, "a set", s.pos)
                        .add_trace(s.pos, format!("while selecting an attribute '{name}'")));
                }
            }
        }
        Ok(v)
    }

    pub fn missing_attr(&self, a: &Attrs, name: Sym, pos: Pos) -> EvalError {
        let mut msg = format!("attribute '{name}' missing");
        let similar: Vec<&str> = a
            .entries
            .iter()
            .map(|x| x.name.as_str())
            .filter(|n| levenshtein(n, name.as_str()) <= 2)
            .take(3)
            .collect();
        if !similar.is_empty() {
            let quoted: Vec<String> = similar.iter().map(|s| format!("'{s}'")).collect();
            msg.push_str(&format!("\n       Did you mean one of {}?", quoted.join(", ")));
        }
        EvalError::eval(msg, pos)
    }

    // ----- function application ------------------------------------------------------------------------------

    pub fn call(&mut self, f: Value, arg: Value, pos: Pos) -> Result<Value> {
        match f {
            Value::Lambda(c) => self.call_lambda(&c, arg, pos),
            Value::PrimOp(p) => {
                if p.arity == 1 {
                    let r = (p.f)(self, &[arg], pos).map_err(|e| e.at(pos))?;
                    self.force(&r)
                } else {
                    Ok(Value::PrimOpApp(Rc::new(PrimOpApp { op: p, args: vec![arg] })))
                }
            }
            Value::PrimOpApp(app) => {
                let mut args = Vec::with_capacity(app.args.len() + 1);
                args.extend(app.args.iter().cloned());
                args.push(arg);
                if args.len() == app.op.arity {
                    let r = (app.op.f)(self, &args, pos).map_err(|e| e.at(pos))?;
                    self.force(&r)
                } else {
                    Ok(Value::PrimOpApp(Rc::new(PrimOpApp { op: app.op.clone(), args })))
                }
            }
            Value::Attrs(a) if a.get_str("__functor").is_some() => {
                let functor = a.get_str("__functor").cloned().unwrap_or(Value::Null);
                let functor = self.force(&functor)?;
                let g = self.call(functor, Value::Attrs(a.clone()), pos)?;
                self.call(g, arg, pos)
            }
            Value::Thunk(_) => {
                let f = self.force(&f)?;
                self.call(f, arg, pos)
            }
            other => Err(EvalError::eval(
                format!(
                    "attempt to call something which is not a function but {}: {}",
                    other.show_type(),
                    crate::print::short(&other)
                ),
                pos,
            )),
        }
    }

    fn call_lambda(&mut self, c: &Rc<Closure>, arg: Value, pos: Pos) -> Result<Value> {
        self.check_stack(pos)?;
        let def = &c.def;
        let env = match &def.param {
            Param::Ident => {
                Rc::new(Env { vals: Slots::One(arg), parent: Some(c.env.clone()), is_with: false })
            }
            Param::Formals { formals, ellipsis, at, .. } => {
                let attrs = match self.force(&arg)? {
                    Value::Attrs(a) => a,
                    v => {
                        return Err(type_err(&v, "a set", pos)
                            .add_trace(def.pos, format!("while calling {}", lambda_name(def))));
                    }
                };
                let mut vals = Vec::with_capacity(def.nslots as usize);
                let mut pending = Vec::new();
                for (name, default) in formals {
                    match attrs.get(*name) {
                        Some(v) => vals.push(v.clone()),
                        None => match default {
                            Some(d) => match &**d {
                                Expr::Const(v) => vals.push(v.clone()),
                                _ => {
                                    let t = Rc::new(Thunk {
                                        state: std::cell::RefCell::new(ThunkState::Blackhole),
                                    });
                                    vals.push(Value::Thunk(t.clone()));
                                    pending.push((d.clone(), t));
                                }
                            },
                            None => {
                                return Err(EvalError::eval(
                                    format!(
                                        "function {} called without required argument '{name}'",
                                        lambda_name(def)
                                    ),
                                    pos,
                                ));
                            }
                        },
                    }
                }
                if !ellipsis && attrs.len() > formals.iter().filter(|(n, _)| attrs.get(*n).is_some()).count()
                {
                    for a in &attrs.entries {
                        if !formals.iter().any(|(n, _)| *n == a.name) {
                            return Err(EvalError::eval(
                                format!(
                                    "function {} called with unexpected argument '{}'",
                                    lambda_name(def),
                                    a.name
                                ),
                                pos,
                            ));
                        }
                    }
                }
                if *at {
                    vals.push(Value::Attrs(attrs));
                }
                let env =
                    Rc::new(Env { vals: Slots::Many(vals), parent: Some(c.env.clone()), is_with: false });
                for (d, t) in pending {
                    *t.state.borrow_mut() = ThunkState::Pending(d, env.clone());
                }
                env
            }
        };
        self.enter(pos)?;
        let r = self.eval(&def.body, &env);
        self.leave();
        r.map_err(|e| e.add_trace(pos, format!("while calling {}", lambda_name(def))))
    }

    /// Applies `f` to several arguments.
    pub fn call_n(&mut self, f: &Value, args: &[Value], pos: Pos) -> Result<Value> {
        let mut v = self.force(f)?;
        for a in args {
            v = self.call(v, a.clone(), pos)?;
        }
        Ok(v)
    }

    // ----- operators -----------------------------------------------------------------------------------------

    fn binop(&mut self, op: BinOp, l: &Expr, r: &Expr, env: &Rc<Env>, pos: Pos) -> Result<Value> {
        match op {
            BinOp::And => {
                if !self.eval_bool(l, env, pos)? {
                    return Ok(Value::Bool(false));
                }
                Ok(Value::Bool(self.eval_bool(r, env, pos)?))
            }
            BinOp::Or => {
                if self.eval_bool(l, env, pos)? {
                    return Ok(Value::Bool(true));
                }
                Ok(Value::Bool(self.eval_bool(r, env, pos)?))
            }
            BinOp::Impl => {
                if !self.eval_bool(l, env, pos)? {
                    return Ok(Value::Bool(true));
                }
                Ok(Value::Bool(self.eval_bool(r, env, pos)?))
            }
            _ => {
                let a = self.eval(l, env)?;
                let b = self.eval(r, env)?;
                // Integer arithmetic and comparison are most of what loops do: answer them without the
                // general path's forcing and dispatch.
                if let (Value::Int(x), Value::Int(y)) = (&a, &b) {
                    let (x, y) = (*x, *y);
                    match op {
                        BinOp::Lt => return Ok(Value::Bool(x < y)),
                        BinOp::Gt => return Ok(Value::Bool(x > y)),
                        BinOp::Le => return Ok(Value::Bool(x <= y)),
                        BinOp::Ge => return Ok(Value::Bool(x >= y)),
                        BinOp::Eq => return Ok(Value::Bool(x == y)),
                        BinOp::Ne => return Ok(Value::Bool(x != y)),
                        BinOp::Add => {
                            if let Some(z) = x.checked_add(y) {
                                return Ok(Value::Int(z));
                            }
                        }
                        BinOp::Sub => {
                            if let Some(z) = x.checked_sub(y) {
                                return Ok(Value::Int(z));
                            }
                        }
                        _ => {}
                    }
                }
                self.binop_values(op, a, b, pos)
            }
        }
    }

    fn eval_bool(&mut self, e: &Expr, env: &Rc<Env>, pos: Pos) -> Result<bool> {
        match self.eval(e, env)? {
            Value::Bool(b) => Ok(b),
            v => Err(type_err(&v, "a Boolean", pos)),
        }
    }

    pub fn binop_values(&mut self, op: BinOp, a: Value, b: Value, pos: Pos) -> Result<Value> {
        match op {
            BinOp::Add => match (&a, &b) {
                (Value::Int(x), Value::Int(y)) => x
                    .checked_add(*y)
                    .map(Value::Int)
                    .ok_or_else(|| EvalError::eval(format!("integer overflow in adding {x} + {y}"), pos)),
                _ => self.concat(vec![a, b], pos),
            },
            BinOp::Sub | BinOp::Mul | BinOp::Div => self.arith(op, a, b, pos),
            BinOp::Concat => {
                let x = match a {
                    Value::List(l) => l,
                    v => return Err(type_err(&v, "a list", pos)),
                };
                let y = match b {
                    Value::List(l) => l,
                    v => return Err(type_err(&v, "a list", pos)),
                };
                if x.is_empty() {
                    return Ok(Value::List(y));
                }
                if y.is_empty() {
                    return Ok(Value::List(x));
                }
                let mut v = Vec::with_capacity(x.len() + y.len());
                v.extend(x.iter().cloned());
                v.extend(y.iter().cloned());
                Ok(Value::list(v))
            }
            BinOp::Update => {
                let x = match a {
                    Value::Attrs(l) => l,
                    v => return Err(type_err(&v, "a set", pos)),
                };
                let y = match b {
                    Value::Attrs(l) => l,
                    v => return Err(type_err(&v, "a set", pos)),
                };
                if x.is_empty() {
                    return Ok(Value::Attrs(y));
                }
                if y.is_empty() {
                    return Ok(Value::Attrs(x));
                }
                Ok(Value::attrs(Attrs::update(&x, &y)))
            }
            BinOp::Eq => Ok(Value::Bool(self.equal(&a, &b)?)),
            BinOp::Ne => Ok(Value::Bool(!self.equal(&a, &b)?)),
            BinOp::Lt => Ok(Value::Bool(self.less_than(&a, &b, pos)?)),
            BinOp::Gt => Ok(Value::Bool(self.less_than(&b, &a, pos)?)),
            BinOp::Le => Ok(Value::Bool(!self.less_than(&b, &a, pos)?)),
            BinOp::Ge => Ok(Value::Bool(!self.less_than(&a, &b, pos)?)),
            BinOp::And | BinOp::Or | BinOp::Impl | BinOp::PipeLeft | BinOp::PipeRight => {
                unreachable!("handled by the compiler or binop")
            }
        }
    }

    pub fn arith(&mut self, op: BinOp, a: Value, b: Value, pos: Pos) -> Result<Value> {
        let a = self.force(&a)?;
        let b = self.force(&b)?;
        if let (Value::Int(x), Value::Int(y)) = (&a, &b) {
            let (x, y) = (*x, *y);
            return match op {
                BinOp::Sub => x.checked_sub(y).map(Value::Int).ok_or_else(|| {
                    EvalError::eval(format!("integer overflow in subtracting {x} - {y}"), pos)
                }),
                BinOp::Mul => x.checked_mul(y).map(Value::Int).ok_or_else(|| {
                    EvalError::eval(format!("integer overflow in multiplying {x} * {y}"), pos)
                }),
                BinOp::Div => {
                    if y == 0 {
                        return Err(EvalError::eval("division by zero", pos));
                    }
                    x.checked_div(y).map(Value::Int).ok_or_else(|| {
                        EvalError::eval(format!("integer overflow in dividing {x} / {y}"), pos)
                    })
                }
                _ => x
                    .checked_add(y)
                    .map(Value::Int)
                    .ok_or_else(|| EvalError::eval(format!("integer overflow in adding {x} + {y}"), pos)),
            };
        }
        // As Nix's primops: division looks at its divisor as a number first; otherwise a float on either side
        // makes a float operation, and anything else must be an integer (so `"a" - 1` expects an integer).
        if op == BinOp::Div && self.force_float(&b, pos)? == 0.0 {
            return Err(EvalError::eval("division by zero", pos));
        }
        if !matches!(a, Value::Float(_)) && !matches!(b, Value::Float(_)) {
            self.force_int(&a, pos)?;
            self.force_int(&b, pos)?;
        }
        let x = self.force_float(&a, pos)?;
        let y = self.force_float(&b, pos)?;
        Ok(Value::Float(match op {
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::Div => {
                if y == 0.0 {
                    return Err(EvalError::eval("division by zero", pos));
                }
                x / y
            }
            _ => x + y,
        }))
    }

    /// Nix's string/path/number concatenation (`+` and interpolation): the first part decides the result type.
    pub fn concat(&mut self, parts: Vec<Value>, pos: Pos) -> Result<Value> {
        let first = parts.first().cloned().unwrap_or(Value::str(""));
        match first {
            Value::Int(_) | Value::Float(_) => {
                let mut acc = first;
                for p in &parts[1..] {
                    acc = match (&acc, p) {
                        (Value::Int(x), Value::Int(y)) => Value::Int(x.checked_add(*y).ok_or_else(|| {
                            EvalError::eval(format!("integer overflow in adding {x} + {y}"), pos)
                        })?),
                        (Value::Int(x), Value::Float(y)) => Value::Float(*x as f64 + y),
                        (Value::Float(x), Value::Int(y)) => Value::Float(x + *y as f64),
                        (Value::Float(x), Value::Float(y)) => Value::Float(x + y),
                        (acc, p) => {
                            return Err(EvalError::eval(
                                format!("cannot add {} to {}", p.show_type(), acc.show_type()),
                                pos,
                            ));
                        }
                    };
                }
                Ok(acc)
            }
            Value::Path(_) => {
                let mut s = String::new();
                let mut ctx = Context::new();
                for (i, p) in parts.iter().enumerate() {
                    let part = self.coerce_to_string(p, pos, Coerce { more: false, copy: false })?;
                    if i > 0 && part.has_ctx() {
                        return Err(EvalError::eval(
                            "a string that refers to a store path cannot be appended to a path",
                            pos,
                        ));
                    }
                    if let Some(c) = &part.ctx {
                        ctx.extend(c.iter().cloned());
                    }
                    s.push_str(&part.s);
                }
                Ok(Value::path(compile::canon_path(&s)))
            }
            _ => {
                let mut s = String::new();
                // The context of the only part that has one is shared, not copied; two or more are merged.
                let mut ctx = StrContext::default();
                for p in &parts {
                    match p {
                        Value::String(x) => {
                            s.push_str(&x.s);
                            ctx.add(&x.ctx);
                        }
                        p => {
                            let part = self.coerce_to_string(p, pos, Coerce { more: false, copy: true })?;
                            s.push_str(&part.s);
                            ctx.add(&part.ctx);
                        }
                    }
                }
                Ok(Value::String(Rc::new(NixStr { s, ctx: ctx.finish() })))
            }
        }
    }

    /// Nix's `coerceToString`.
    pub fn coerce_to_string(&mut self, v: &Value, pos: Pos, how: Coerce) -> Result<NixStr> {
        let v = self.force(v)?;
        Ok(match &v {
            Value::String(s) => (**s).clone(),
            Value::Path(p) => {
                if how.copy {
                    let sp = self.copy_path_to_store(p, pos)?;
                    let mut ctx = Context::new();
                    ctx.insert(sp.clone());
                    NixStr::with_ctx(sp, ctx)
                } else {
                    NixStr::plain(p.to_string())
                }
            }
            Value::Attrs(a) => {
                if let Some(f) = a.get_str("__toString") {
                    let f = f.clone();
                    let r = self.call_n(&f, std::slice::from_ref(&v), pos)?;
                    return self.coerce_to_string(&r, pos, how);
                }
                if let Some(o) = a.get_str("outPath") {
                    let o = o.clone();
                    return self.coerce_to_string(&o, pos, how);
                }
                return Err(EvalError::eval(
                    format!("cannot coerce a set to a string: {}", crate::print::short(&v)),
                    pos,
                ));
            }
            Value::Null if how.more => NixStr::plain(""),
            Value::Bool(b) if how.more => NixStr::plain(if *b { "1" } else { "" }),
            Value::Int(i) if how.more => NixStr::plain(i.to_string()),
            Value::Float(f) if how.more => NixStr::plain(format!("{f:.6}")),
            Value::List(l) if how.more => {
                let mut s = String::new();
                let mut ctx = StrContext::default();
                for (i, x) in l.iter().enumerate() {
                    let part = self.coerce_to_string(x, pos, how)?;
                    if i > 0 && !(matches!(self.force(x)?, Value::List(ref y) if y.is_empty())) {
                        s.push(' ');
                    }
                    s.push_str(&part.s);
                    ctx.add(&part.ctx);
                }
                NixStr { s, ctx: ctx.finish() }
            }
            other => {
                return Err(EvalError::eval(
                    format!(
                        "cannot coerce {} to a string: {}",
                        other.show_type(),
                        crate::print::short(other)
                    ),
                    pos,
                ));
            }
        })
    }

    /// Copies a source path into the store (as `"${./p}"` does) and returns the store path.
    pub fn copy_path_to_store(&mut self, p: &str, pos: Pos) -> Result<String> {
        if let Some(sp) = self.path_cache.get(p) {
            return Ok(sp.clone());
        }
        let name = p.rsplit('/').next().unwrap_or("").to_string();
        let sp = crate::builtins::fs::add_path(self, p, &name, None, true, None, pos)?;
        self.path_cache.insert(p.to_string(), sp.clone());
        Ok(sp)
    }

    // ----- equality and ordering -----------------------------------------------------------------------------

    /// Nix's `==`; functions are never equal.
    pub fn equal(&mut self, a: &Value, b: &Value) -> Result<bool> {
        if let (Value::Thunk(x), Value::Thunk(y)) = (a, b)
            && Rc::ptr_eq(x, y)
        {
            return Ok(true);
        }
        let a = self.force(a)?;
        let b = self.force(b)?;
        Ok(match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Int(x), Value::Float(y)) => (*x as f64) == *y,
            (Value::Float(x), Value::Int(y)) => *x == (*y as f64),
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::String(x), Value::String(y)) => x.s == y.s,
            (Value::Path(x), Value::Path(y)) => x == y,
            (Value::Null, Value::Null) => true,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::List(x), Value::List(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (p, q) in x.iter().zip(y.iter()) {
                    if !self.equal(p, q)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Value::Attrs(x), Value::Attrs(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if self.is_derivation(x)? && self.is_derivation(y)? {
                    let (Some(p), Some(q)) = (x.get_str("outPath").cloned(), y.get_str("outPath").cloned())
                    else {
                        return Ok(false);
                    };
                    return self.equal(&p, &q);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (p, q) in x.entries.iter().zip(y.entries.iter()) {
                    if p.name != q.name || !self.equal(&p.value, &q.value)? {
                        return Ok(false);
                    }
                }
                true
            }
            _ => false,
        })
    }

    pub fn is_derivation(&mut self, a: &Attrs) -> Result<bool> {
        match a.get_str("type") {
            Some(t) => {
                let t = t.clone();
                Ok(matches!(self.force(&t)?, Value::String(s) if s.s == "derivation"))
            }
            None => Ok(false),
        }
    }

    pub fn less_than(&mut self, a: &Value, b: &Value, pos: Pos) -> Result<bool> {
        Ok(self.compare(a, b, pos)? == Ordering::Less)
    }

    /// Ordering as `<` and `sort` see it; incomparable values are an error.
    pub fn compare(&mut self, a: &Value, b: &Value, pos: Pos) -> Result<Ordering> {
        let a = self.force(a)?;
        let b = self.force(b)?;
        Ok(match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y).unwrap_or(Ordering::Greater),
            (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Greater),
            (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Greater),
            (Value::String(x), Value::String(y)) => x.s.as_bytes().cmp(y.s.as_bytes()),
            (Value::Path(x), Value::Path(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Value::List(x), Value::List(y)) => {
                for (p, q) in x.iter().zip(y.iter()) {
                    if self.equal(p, q)? {
                        continue;
                    }
                    return self.compare(p, q, pos);
                }
                x.len().cmp(&y.len())
            }
            _ => {
                let values = format!("{} and {}", crate::print::short(&a), crate::print::short(&b));
                let why = if a.show_type() == b.show_type() {
                    format!("values of that type are incomparable (values are {values})")
                } else {
                    format!("values are {values}")
                };
                let msg = format!("cannot compare {} with {}; {why}", a.show_type(), b.show_type());
                return Err(EvalError::eval(msg, pos));
            }
        })
    }
}

/// An attribute name must not refer to the store (Nix forces names without context).
fn no_context(s: &NixStr, pos: Pos) -> Result<&str> {
    match s.ctx.as_deref().and_then(|c| c.iter().next()) {
        Some(c) => Err(EvalError::eval(
            format!("the string '{}' is not allowed to refer to a store path (such as '{c}')", s.s),
            pos,
        )),
        None => Ok(&s.s),
    }
}

#[inline]
fn slot(env: &Rc<Env>, up: u32, idx: u32) -> &Value {
    let mut e = env;
    for _ in 0..up {
        e = e.parent.as_ref().unwrap_or_else(|| unreachable!("compiler counted environments"));
    }
    &e.vals[idx as usize]
}

#[inline]
fn lookup(env: &Rc<Env>, up: u32, idx: u32) -> Value {
    slot(env, up, idx).clone()
}

pub(crate) fn lambda_name(def: &compile::LambdaDef) -> String {
    match def.name {
        Some(n) => format!("'{n}'"),
        None => "'anonymous lambda'".to_string(),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let v = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(v);
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
        // strerror's text alone, as Nix prints it (Rust appends " (os error N)").
        _ => {
            let s = e.to_string();
            match s.rfind(" (os error ") {
                Some(i) if s.ends_with(')') => s[..i].to_string(),
                _ => s,
            }
        }
    }
}
