//! Runtime values: the tagged `Value` (16 bytes, `Rc`-shared heap parts), strings with their store-path context,
//! attribute sets as name-sorted vectors, lists, closures, primops and the lazily evaluated `Thunk`.
//! `eval` produces and forces these; `print` and the builtins consume them.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use crate::compile::{Expr, LambdaDef};
use crate::source::Pos;
use crate::sym::Sym;

/// A Nix value. `Thunk` is the only variant that is not in weak head normal form.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Rc<NixStr>),
    /// A `String` behind the `Rc`, not a `str`: a thin pointer keeps every value at 16 bytes (lists, sets and
    /// thunks hold millions of them), and paths are few.
    Path(Rc<String>),
    Attrs(Rc<Attrs>),
    List(Rc<Vec<Value>>),
    Lambda(Rc<Closure>),
    PrimOp(Rc<PrimOp>),
    PrimOpApp(Rc<PrimOpApp>),
    Thunk(Rc<Thunk>),
}

/// The context of a string: which store paths it refers to, in Nix's encoding (`/nix/store/…` for a plain path,
/// `=/nix/store/….drv` for a derivation with all its outputs, `!out!/nix/store/….drv` for one output).
pub type Context = BTreeSet<String>;

/// The context of a string being put together from parts: the first part's shared context until a second one
/// has to be merged with it.
#[derive(Debug, Default)]
pub struct StrContext {
    shared: Option<Rc<[String]>>,
    merged: Option<Context>,
}

impl StrContext {
    pub fn add(&mut self, ctx: &Option<Rc<[String]>>) {
        let Some(c) = ctx else { return };
        if let Some(m) = &mut self.merged {
            m.extend(c.iter().cloned());
        } else if let Some(first) = &self.shared {
            if !Rc::ptr_eq(first, c) && **first != **c {
                self.merged = Some(first.iter().chain(c.iter()).cloned().collect());
            }
        } else {
            self.shared = Some(c.clone());
        }
    }

    pub fn finish(self) -> Option<Rc<[String]>> {
        match self.merged {
            Some(m) => Some(m.into_iter().collect()),
            None => self.shared,
        }
    }
}

/// A string and its context.
#[derive(Clone, Debug, Default)]
pub struct NixStr {
    pub s: String,
    /// The context, sorted and without duplicates, never empty; shared between the strings made from one string
    /// (`"${pkg}/bin"` has `pkg`'s): a set per string cost a tree node of a few hundred bytes each, and nixpkgs keeps
    /// hundreds of thousands of such strings alive.
    pub ctx: Option<Rc<[String]>>,
}

impl NixStr {
    pub fn plain(s: impl Into<String>) -> NixStr {
        NixStr { s: s.into(), ctx: None }
    }

    pub fn with_ctx(s: impl Into<String>, ctx: Context) -> NixStr {
        NixStr { s: s.into(), ctx: if ctx.is_empty() { None } else { Some(ctx.into_iter().collect()) } }
    }

    /// The context as a set, to add to.
    pub fn context(&self) -> Context {
        self.ctx.iter().flat_map(|c| c.iter().cloned()).collect()
    }

    pub fn has_ctx(&self) -> bool {
        self.ctx.as_ref().is_some_and(|c| !c.is_empty())
    }
}

/// One attribute: name, value and where it was defined (for `unsafeGetAttrPos`).
#[derive(Clone, Debug)]
pub struct Attr {
    pub name: Sym,
    pub value: Value,
    pub pos: Pos,
}

/// An attribute set: attributes sorted by name, unique.
#[derive(Clone, Debug, Default)]
pub struct Attrs {
    pub entries: Vec<Attr>,
}

impl Attrs {
    pub fn get(&self, name: Sym) -> Option<&Value> {
        self.get_attr(name).map(|a| &a.value)
    }

    pub fn get_attr(&self, name: Sym) -> Option<&Attr> {
        let e = &self.entries;
        if e.len() <= 8 {
            return e.iter().find(|a| a.name == name);
        }
        e.binary_search_by(|a| a.name.cmp(&name)).ok().map(|i| &e[i])
    }

    pub fn get_str(&self, name: &str) -> Option<&Value> {
        self.get(Sym::new(name))
    }

    /// Builds a set from unsorted attributes; for duplicate names the last one wins.
    pub fn from_unsorted(mut entries: Vec<Attr>) -> Attrs {
        entries.sort_by_key(|a| a.name);
        // Keep the last of equal names, as `listToAttrs` keeps the first: callers order accordingly.
        let mut out: Vec<Attr> = Vec::with_capacity(entries.len());
        for a in entries {
            match out.last_mut() {
                Some(last) if last.name == a.name => *last = a,
                _ => out.push(a),
            }
        }
        Attrs { entries: out }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `a // b`: a merge of two sorted vectors, right side winning.
    pub fn update(a: &Attrs, b: &Attrs) -> Attrs {
        let (x, y) = (&a.entries, &b.entries);
        let mut out = Vec::with_capacity(x.len() + y.len());
        let (mut i, mut j) = (0, 0);
        while i < x.len() && j < y.len() {
            match x[i].name.cmp(&y[j].name) {
                std::cmp::Ordering::Less => {
                    out.push(x[i].clone());
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(y[j].clone());
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(y[j].clone());
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&x[i..]);
        out.extend_from_slice(&y[j..]);
        Attrs { entries: out }
    }
}

/// A lexical environment: the values of one scope and the enclosing environment.
#[derive(Debug)]
pub struct Env {
    pub vals: Slots,
    pub parent: Option<Rc<Env>>,
    /// A `with` scope holds the attribute set (possibly unevaluated) in `vals[0]`.
    pub is_with: bool,
}

/// The values of one scope. Most scopes (a lambda's argument, a `with`) hold one value, kept inline so that a
/// call allocates one block, not two.
#[derive(Debug)]
pub enum Slots {
    One(Value),
    Many(Vec<Value>),
}

impl Env {
    /// The outermost environment of a file or expression: no values, no parent.
    pub fn root() -> Env {
        Env { vals: Slots::Many(Vec::new()), parent: None, is_with: false }
    }
}

impl std::ops::Index<usize> for Slots {
    type Output = Value;
    #[inline]
    fn index(&self, i: usize) -> &Value {
        match self {
            Slots::One(v) if i == 0 => v,
            Slots::One(_) => panic!("slot {i} of a one-value scope"),
            Slots::Many(v) => &v[i],
        }
    }
}

/// A lambda together with the environment it closes over.
#[derive(Debug)]
pub struct Closure {
    pub def: Rc<LambdaDef>,
    pub env: Rc<Env>,
}

pub type PrimFn = fn(&mut crate::eval::Evaluator, &[Value], Pos) -> crate::error::Result<Value>;

/// A builtin function of fixed arity.
#[derive(Debug)]
pub struct PrimOp {
    pub name: &'static str,
    pub arity: usize,
    pub f: PrimFn,
}

/// A builtin applied to fewer arguments than its arity.
#[derive(Debug)]
pub struct PrimOpApp {
    pub op: Rc<PrimOp>,
    pub args: Vec<Value>,
}

/// A suspended computation, evaluated at most once.
#[derive(Debug)]
pub struct Thunk {
    pub state: RefCell<ThunkState>,
}

#[derive(Debug)]
pub enum ThunkState {
    /// An expression in an environment.
    Pending(Rc<Expr>, Rc<Env>),
    /// A function application made lazily by a builtin (`map`, `genList`, `mapAttrs`, …).
    Apply(Value, Value),
    /// An attribute selection made lazily by a builtin.
    Select(Value, Sym),
    /// Being evaluated right now: forcing it again is infinite recursion.
    Blackhole,
    Done(Value),
}

impl Value {
    pub fn path(s: impl Into<String>) -> Value {
        Value::Path(Rc::new(s.into()))
    }

    pub fn str(s: impl Into<String>) -> Value {
        Value::String(Rc::new(NixStr::plain(s)))
    }

    pub fn attrs(a: Attrs) -> Value {
        Value::Attrs(Rc::new(a))
    }

    pub fn list(v: Vec<Value>) -> Value {
        Value::List(Rc::new(v))
    }

    pub fn pending(e: Rc<Expr>, env: Rc<Env>) -> Value {
        Value::Thunk(Rc::new(Thunk { state: RefCell::new(ThunkState::Pending(e, env)) }))
    }

    pub fn apply_lazy(f: Value, arg: Value) -> Value {
        Value::Thunk(Rc::new(Thunk { state: RefCell::new(ThunkState::Apply(f, arg)) }))
    }

    pub fn select_lazy(v: Value, name: Sym) -> Value {
        Value::Thunk(Rc::new(Thunk { state: RefCell::new(ThunkState::Select(v, name)) }))
    }

    /// The type name as `builtins.typeOf` reports it.
    pub fn type_of(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Path(_) => "path",
            Value::Attrs(_) => "set",
            Value::List(_) => "list",
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => "lambda",
            Value::Thunk(_) => "thunk",
        }
    }

    /// The type as Nix's error messages describe it ("a string", "an integer", …).
    pub fn show_type(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a Boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(s) if s.has_ctx() => "a string with context",
            Value::String(_) => "a string",
            Value::Path(_) => "a path",
            Value::Attrs(_) => "a set",
            Value::List(_) => "a list",
            Value::Lambda(_) => "a function",
            Value::PrimOp(_) => "a built-in function",
            Value::PrimOpApp(_) => "a partially applied built-in function",
            Value::Thunk(_) => "a thunk",
        }
    }

    pub fn is_thunk(&self) -> bool {
        matches!(self, Value::Thunk(t) if !matches!(&*t.state.borrow(), ThunkState::Done(_)))
    }

    /// The value if it is already evaluated (looking through finished thunks).
    pub fn evaluated(&self) -> Option<Value> {
        match self {
            Value::Thunk(t) => match &*t.state.borrow() {
                ThunkState::Done(v) => Some(v.clone()),
                _ => None,
            },
            v => Some(v.clone()),
        }
    }

    pub fn is_function(&self) -> bool {
        matches!(self, Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_))
    }
}

// Lists, sets and thunks hold values by the million; a larger `Value` costs memory everywhere.
const _: () = assert!(std::mem::size_of::<Value>() == 16);
