//! From source text to the evaluator's IR: parse with `rnix` (through `syntax`), then one pass that resolves every
//! variable to an environment slot (or a dynamic `with` lookup), merges nested attribute paths and rejects what Nix
//! rejects at parse time and rnix accepts (undefined variables, duplicate attributes and formals, mixed nested
//! attribute definitions, `args@{ args, … }`, a bare CR ending a comment). `eval` walks the resulting `Expr` tree.

use std::rc::Rc;

use rnix::SyntaxNode;
use rnix::ast::{self, AstToken, HasEntry};
use rowan::ast::AstNode;

use crate::error::{ErrorKind, EvalError, Result};
use crate::settings::LintLevel;
use crate::source::{self, Pos};
use crate::sym::{Sym, SymMap};
use crate::syntax;
use crate::value::Value;

/// A compiled expression.
#[derive(Debug)]
pub enum Expr {
    Const(Value),
    /// A lexical variable: `up` environments outwards, slot `idx`.
    Var(u32, u32),
    /// A variable only a `with` can provide; `up` is the distance to the innermost `with` environment.
    WithVar {
        name: Sym,
        up: u32,
        pos: Pos,
    },
    Attrs(Box<AttrsExpr>),
    Let(Box<LetExpr>),
    List(Vec<Rc<Expr>>),
    Select(Box<SelectExpr>),
    HasAttr(Box<Expr>, Vec<AttrName>),
    Lambda(Rc<LambdaDef>),
    Call(Box<Expr>, Vec<Rc<Expr>>, Pos),
    If(Box<(Expr, Expr, Expr)>, Pos),
    Assert(Box<(Expr, Expr)>, Pos, String),
    With(Box<(Rc<Expr>, Expr)>),
    Bin(BinOp, Box<(Expr, Expr)>, Pos),
    Not(Box<Expr>, Pos),
    Neg(Box<Expr>, Pos),
    /// String or path interpolation; the type of the first part decides the result's type.
    Interp(Vec<Expr>, Pos),
    CurPos(Pos),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Concat,
    Update,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Impl,
    PipeRight,
    PipeLeft,
}

#[derive(Debug)]
pub enum AttrName {
    Static(Sym),
    Dynamic(Expr),
}

#[derive(Debug)]
pub enum AttrValue {
    /// The value is slot `n` of the set's own environment (recursive sets).
    Slot(u32),
    /// The value is this expression, evaluated lazily in the set's environment.
    Expr(Rc<Expr>),
}

#[derive(Debug)]
pub struct AttrsExpr {
    /// Whether evaluation creates an environment (recursive sets, and sets with `inherit (e)` sources).
    pub has_env: bool,
    pub slots: Vec<Rc<Expr>>,
    /// Sorted by name.
    pub statics: Vec<(Sym, AttrValue, Pos)>,
    pub dynamics: Vec<(Expr, Rc<Expr>, Pos)>,
}

#[derive(Debug)]
pub struct LetExpr {
    pub slots: Vec<Rc<Expr>>,
    pub body: Expr,
}

#[derive(Debug)]
pub struct SelectExpr {
    pub e: Expr,
    pub path: Vec<AttrName>,
    pub default: Option<Expr>,
    pub pos: Pos,
}

#[derive(Debug)]
pub struct LambdaDef {
    pub param: Param,
    pub body: Expr,
    pub nslots: u32,
    pub pos: Pos,
    pub name: Option<Sym>,
    /// The name the whole argument is bound to (`x: …` or `args@{ … }: …`), which `toXML` shows.
    pub arg: Option<Sym>,
}

#[derive(Debug)]
pub enum Param {
    Ident,
    /// `positions[i]` is where formal `i` is named (`unsafeGetAttrPos` on `functionArgs` reports it).
    Formals {
        formals: Vec<(Sym, Option<Rc<Expr>>)>,
        positions: Vec<Pos>,
        ellipsis: bool,
        at: bool,
    },
}

/// What the compiler needs from the evaluator: the global names (builtins reachable without `builtins.`).
#[derive(Debug)]
pub struct CompileEnv<'a> {
    pub globals: &'a SymMap<Value>,
    /// Names bound in an extra environment between the globals and the file (`scopedImport`).
    pub extra_scope: Option<&'a [Sym]>,
    /// Directory that relative path literals are resolved against.
    pub base_dir: &'a str,
    /// `$HOME`, for `~/` paths.
    pub home: Option<&'a str>,
    /// Whether the pipe operators `|>` and `<|` are allowed.
    pub pipe_operators: bool,
    /// How path and URL literals are linted.
    pub lints: Lints,
    /// Warnings found while compiling (lints at level `warn`), with their positions; the evaluator prints them.
    pub warnings: std::cell::RefCell<Vec<(String, Pos)>>,
}

/// The levels of the literal lints (`lint-absolute-path-literals`, `lint-short-path-literals`,
/// `lint-url-literals`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Lints {
    pub absolute_paths: LintLevel,
    pub short_paths: LintLevel,
    pub url_literals: LintLevel,
}

/// Parses and compiles a source. `name` is how the source is named in positions.
pub fn compile(name: &str, text: &str, cenv: &CompileEnv<'_>) -> Result<Expr> {
    let text: Rc<str> = Rc::from(syntax::fix_bare_cr_comments(text));
    let file = source::register(name, text.clone());
    let (green, errors) = syntax::parse(&text);
    if let Some(err) = errors.first() {
        return Err(syntax::parse_error(err, file, text.len()));
    }
    let root = rnix::Root::cast(SyntaxNode::new_root(green.clone()));
    let expr = root.and_then(|r| r.expr()).ok_or_else(|| {
        EvalError::new(
            ErrorKind::Parse,
            "syntax error, unexpected end of file",
            Pos { file, offset: text.len() as u32 },
        )
    })?;
    let mut c = Compiler { file, cenv, scopes: Vec::new() };
    if let Some(names) = cenv.extra_scope {
        c.scopes.push(Scope {
            names: names.iter().enumerate().map(|(i, s)| (*s, i as u32)).collect(),
            with: false,
        });
    }
    let compiled = c.expr(&expr);
    drop(expr);
    if text.len() >= syntax::PIPELINE_MIN {
        // Freeing a large syntax tree costs about a tenth of parsing it; nothing waits for it.
        std::thread::spawn(move || drop(green));
    }
    compiled
}

struct Scope {
    names: SymMap<u32>,
    with: bool,
}

struct Compiler<'a, 'b> {
    file: u32,
    cenv: &'a CompileEnv<'b>,
    scopes: Vec<Scope>,
}

/// An attribute set under construction, before names are turned into slots (nested paths merge here).
struct PAttrs {
    rec: bool,
    statics: Vec<(Sym, PVal, Pos)>,
    /// Where each name is in `statics`: a set or `let` of thousands of bindings must not search linearly.
    index: SymMap<usize>,
    dynamics: Vec<(ast::Attr, PVal, Pos)>,
    inherit_from: Vec<ast::Expr>,
}

impl PAttrs {
    fn new(rec: bool) -> PAttrs {
        PAttrs {
            rec,
            statics: Vec::new(),
            index: SymMap::default(),
            dynamics: Vec::new(),
            inherit_from: Vec::new(),
        }
    }

    fn position(&self, name: Sym) -> Option<usize> {
        self.index.get(&name).copied()
    }

    /// Adds a static attribute, or returns the position of the earlier definition of the same name.
    fn push_static(&mut self, name: Sym, v: PVal, pos: Pos) -> std::result::Result<(), Pos> {
        if let Some(i) = self.position(name) {
            return Err(self.statics[i].2);
        }
        self.index.insert(name, self.statics.len());
        self.statics.push((name, v, pos));
        Ok(())
    }
}

enum PVal {
    Ast(ast::Expr),
    Nested(PAttrs),
    /// `inherit x;`: the variable of the enclosing scope.
    InheritVar(Sym, Pos),
    /// `inherit (e) x;`: index of `e` in `inherit_from`.
    InheritFrom(usize, Sym, Pos),
}

fn err(msg: impl Into<String>, pos: Pos) -> EvalError {
    EvalError::new(ErrorKind::Parse, msg, pos)
}

impl CompileEnv<'_> {
    /// Reports what a lint found at `level`: nothing, a warning, or a parse error. `msg` is built only when needed.
    fn diagnose(
        &self,
        level: LintLevel,
        setting: &str,
        pos: Pos,
        msg: impl FnOnce() -> String,
    ) -> Result<()> {
        match level {
            LintLevel::Ignore => Ok(()),
            LintLevel::Warn => {
                self.warnings.borrow_mut().push((format!("{} ({setting})", msg()), pos));
                Ok(())
            }
            LintLevel::Fatal => Err(err(format!("{} ({setting})", msg()), pos)),
        }
    }
}

impl Compiler<'_, '_> {
    fn pos(&self, node: &SyntaxNode) -> Pos {
        Pos { file: self.file, offset: u32::from(node.text_range().start()) }
    }

    fn pos_tok(&self, tok: &rnix::SyntaxToken) -> Pos {
        Pos { file: self.file, offset: u32::from(tok.text_range().start()) }
    }

    fn expr_rc(&mut self, e: &ast::Expr) -> Result<Rc<Expr>> {
        Ok(Rc::new(self.expr(e)?))
    }

    fn child(&mut self, e: Option<ast::Expr>, parent: &SyntaxNode) -> Result<Expr> {
        match e {
            Some(e) => self.expr(&e),
            None => Err(err("syntax error, missing expression", self.pos(parent))),
        }
    }

    fn lookup(&self, name: Sym, pos: Pos) -> Result<Expr> {
        let mut with_up = None;
        for (up, scope) in self.scopes.iter().rev().enumerate() {
            if scope.with {
                if with_up.is_none() {
                    with_up = Some(up as u32);
                }
                continue;
            }
            if let Some(&idx) = scope.names.get(&name) {
                return Ok(Expr::Var(up as u32, idx));
            }
        }
        if let Some(v) = self.cenv.globals.get(&name) {
            // Globals are lexical, so they win over `with`, as in Nix.
            return Ok(Expr::Const(v.clone()));
        }
        if let Some(up) = with_up {
            return Ok(Expr::WithVar { name, up, pos });
        }
        Err(err(format!("undefined variable '{name}'"), pos))
    }

    /// Resolves a variable as seen from the scope enclosing the innermost one (for `inherit x;`), adjusted so it
    /// can be evaluated inside the innermost scope.
    fn lookup_outer(&mut self, name: Sym, pos: Pos) -> Result<Expr> {
        let inner = self.scopes.pop();
        let r = self.lookup(name, pos);
        if let Some(s) = inner {
            self.scopes.push(s);
        }
        Ok(match r? {
            Expr::Var(up, idx) => Expr::Var(up + 1, idx),
            Expr::WithVar { name, up, pos } => Expr::WithVar { name, up: up + 1, pos },
            e => e,
        })
    }

    fn ident_sym(&self, id: &ast::Ident) -> Sym {
        match id.ident_token() {
            Some(t) => Sym::new(t.text()),
            None => Sym::new(&id.syntax().text().to_string()),
        }
    }

    fn expr(&mut self, e: &ast::Expr) -> Result<Expr> {
        let pos = self.pos(e.syntax());
        Ok(match e {
            ast::Expr::Paren(p) => return self.child(p.expr(), p.syntax()),
            ast::Expr::Root(r) => return self.child(r.expr(), r.syntax()),
            ast::Expr::Error(_) => return Err(err("syntax error", pos)),
            ast::Expr::Literal(l) => self.literal(l, pos)?,
            ast::Expr::Ident(id) => {
                let name = self.ident_sym(id);
                if name.as_str() == "__curPos" { Expr::CurPos(pos) } else { self.lookup(name, pos)? }
            }
            ast::Expr::Str(s) => self.string(s, pos)?,
            ast::Expr::Path(p) => self.path(p, pos)?,
            ast::Expr::List(l) => {
                let mut items = Vec::new();
                for i in l.items() {
                    items.push(self.expr_rc(&i)?);
                }
                Expr::List(items)
            }
            ast::Expr::Apply(a) => {
                let [f, arg] = exprs(a.syntax());
                let f = self.child(f, a.syntax())?;
                let arg = Rc::new(self.child(arg, a.syntax())?);
                match f {
                    Expr::Call(f, mut args, p) => {
                        args.push(arg);
                        Expr::Call(f, args, p)
                    }
                    f => Expr::Call(Box::new(f), vec![arg], pos),
                }
            }
            ast::Expr::IfElse(i) => {
                let [c, t, f] = exprs(i.syntax());
                let c = self.child(c, i.syntax())?;
                let t = self.child(t, i.syntax())?;
                let f = self.child(f, i.syntax())?;
                Expr::If(Box::new((c, t, f)), pos)
            }
            ast::Expr::Assert(a) => {
                let cond = a.condition();
                let text = cond.as_ref().map(|c| self.show(c)).unwrap_or_default();
                let c = self.child(cond, a.syntax())?;
                let b = self.child(a.body(), a.syntax())?;
                Expr::Assert(Box::new((c, b)), pos, text)
            }
            ast::Expr::With(w) => {
                let ns = Rc::new(self.child(w.namespace(), w.syntax())?);
                self.scopes.push(Scope { names: SymMap::default(), with: true });
                let body = self.child(w.body(), w.syntax());
                self.scopes.pop();
                Expr::With(Box::new((ns, body?)))
            }
            ast::Expr::UnaryOp(u) => {
                let inner = self.child(u.expr(), u.syntax())?;
                match u.operator() {
                    Some(ast::UnaryOpKind::Invert) => Expr::Not(Box::new(inner), pos),
                    _ => Expr::Neg(Box::new(inner), pos),
                }
            }
            ast::Expr::BinOp(b) => {
                use ast::BinOpKind as K;
                // One walk over the children for the operands and the operator (rnix's accessors walk once each).
                let (mut lhs, mut rhs, mut op_tok) = (None, None, None);
                for el in b.syntax().children_with_tokens() {
                    match el {
                        rowan::NodeOrToken::Node(n) => match ast::Expr::cast(n) {
                            Some(e) if lhs.is_none() => lhs = Some(e),
                            Some(e) if rhs.is_none() => rhs = Some(e),
                            _ => {}
                        },
                        rowan::NodeOrToken::Token(t) if op_tok.is_none() => {
                            op_tok = K::from_kind(t.kind()).map(|k| (k, self.pos_tok(&t)));
                        }
                        rowan::NodeOrToken::Token(_) => {}
                    }
                }
                let op = match op_tok.map(|o| o.0) {
                    Some(K::Concat) => BinOp::Concat,
                    Some(K::Update) => BinOp::Update,
                    Some(K::Add) => BinOp::Add,
                    Some(K::Sub) => BinOp::Sub,
                    Some(K::Mul) => BinOp::Mul,
                    Some(K::Div) => BinOp::Div,
                    Some(K::And) => BinOp::And,
                    Some(K::Equal) => BinOp::Eq,
                    Some(K::Implication) => BinOp::Impl,
                    Some(K::Less) => BinOp::Lt,
                    Some(K::LessOrEq) => BinOp::Le,
                    Some(K::More) => BinOp::Gt,
                    Some(K::MoreOrEq) => BinOp::Ge,
                    Some(K::NotEqual) => BinOp::Ne,
                    Some(K::Or) => BinOp::Or,
                    Some(K::PipeRight) => BinOp::PipeRight,
                    Some(K::PipeLeft) => BinOp::PipeLeft,
                    None => return Err(err("syntax error, missing operator", pos)),
                };
                let op_pos = op_tok.map_or(pos, |o| o.1);
                if matches!(op, BinOp::PipeRight | BinOp::PipeLeft) && !self.cenv.pipe_operators {
                    return Err(err(
                        "experimental Nix feature 'pipe-operators' is disabled; add '--extra-experimental-features pipe-operators' to enable it",
                        op_pos,
                    ));
                }
                let l = self.child(lhs, b.syntax())?;
                let r = self.child(rhs, b.syntax())?;
                match op {
                    BinOp::PipeRight => Expr::Call(Box::new(r), vec![Rc::new(l)], op_pos),
                    BinOp::PipeLeft => Expr::Call(Box::new(l), vec![Rc::new(r)], op_pos),
                    _ => Expr::Bin(op, Box::new((l, r)), op_pos),
                }
            }
            ast::Expr::Select(s) => {
                let (mut attrpath, mut es) = (None, [None, None]);
                let mut n = 0;
                for c in s.syntax().children() {
                    if c.kind() == rnix::SyntaxKind::NODE_ATTRPATH {
                        attrpath = attrpath.or_else(|| ast::Attrpath::cast(c));
                    } else if let Some(e) = ast::Expr::cast(c)
                        && n < 2
                    {
                        es[n] = Some(e);
                        n += 1;
                    }
                }
                let [e, default] = es;
                let inner = self.child(e, s.syntax())?;
                let path = self.attrpath(attrpath, s.syntax())?;
                let default = match default {
                    Some(d) => Some(self.expr(&d)?),
                    None => None,
                };
                Expr::Select(Box::new(SelectExpr { e: inner, path, default, pos }))
            }
            ast::Expr::HasAttr(h) => {
                let inner = self.child(h.expr(), h.syntax())?;
                let path = self.attrpath(h.attrpath(), h.syntax())?;
                Expr::HasAttr(Box::new(inner), path)
            }
            ast::Expr::Lambda(l) => Expr::Lambda(Rc::new(self.lambda(l, pos, None)?)),
            ast::Expr::AttrSet(a) => {
                let p = self.collect_attrs(a.entries(), a.rec_token().is_some(), false)?;
                self.attrs(p)?
            }
            ast::Expr::LetIn(l) => {
                let p = self.collect_attrs(l.entries(), true, true)?;
                self.let_in(p, |c| c.child(l.body(), l.syntax()))?
            }
            ast::Expr::LegacyLet(l) => {
                // `let { …; body = …; }` is `(rec { … }).body`.
                let p = self.collect_attrs(l.entries(), true, false)?;
                let set = self.attrs(p)?;
                Expr::Select(Box::new(SelectExpr {
                    e: set,
                    path: vec![AttrName::Static(Sym::new("body"))],
                    default: None,
                    pos,
                }))
            }
        })
    }

    /// An expression as Nix shows it in `assertion '…' failed`: as its parser desugars it, fully parenthesised
    /// (`a - b` is `(__sub a b)`, `a < b` is `(__lessThan a b)`). Forms not covered show their source text.
    fn show(&self, e: &ast::Expr) -> String {
        use ast::BinOpKind as K;
        let sub = |e: Option<ast::Expr>| e.map_or_else(String::new, |e| self.show(&e));
        let path = |p: Option<ast::Attrpath>| {
            let names: Vec<String> = p
                .map(|p| p.attrs().collect::<Vec<_>>())
                .unwrap_or_default()
                .iter()
                .map(|a| match (a, self.static_name(a)) {
                    (_, Some(n)) => n.as_str().to_string(),
                    (ast::Attr::Dynamic(d), None) => format!("\"${{{}}}\"", sub(d.expr())),
                    // An interpolated name shows as the concatenation Nix's parser makes of it.
                    (ast::Attr::Str(st), None) => {
                        format!("\"${{{}}}\"", self.show(&ast::Expr::Str(st.clone())))
                    }
                    (a, None) => a.syntax().text().to_string(),
                })
                .collect();
            names.join(".")
        };
        match e {
            ast::Expr::Paren(p) => sub(p.expr()),
            ast::Expr::Ident(i) => i.syntax().text().to_string(),
            ast::Expr::Literal(l) => match l.kind() {
                ast::LiteralKind::Float(_) => {
                    let t = l.syntax().text().to_string();
                    t.parse::<f64>().map_or(t, crate::print::fmt_float)
                }
                ast::LiteralKind::Uri(_) => crate::print::quote_string(&l.syntax().text().to_string()),
                _ => l.syntax().text().to_string(),
            },
            ast::Expr::Str(st) if st.parts().all(|p| matches!(p, ast::InterpolPart::Literal(_))) => {
                let multiline = st.syntax().first_token().is_some_and(|t| t.text() == "''");
                let mut parts = Vec::new();
                for part in st.parts() {
                    if let ast::InterpolPart::Literal(l) = part {
                        if multiline {
                            parts.extend(indented_parts(l.syntax().text()));
                        } else {
                            parts.push(StrPart::Lit(unescape_plain(l.syntax().text())));
                        }
                    }
                }
                if multiline {
                    parts = strip_indentation(parts);
                }
                let text: String = parts
                    .into_iter()
                    .map(|p| if let StrPart::Lit(l) = p { l } else { String::new() })
                    .collect();
                crate::print::quote_string(&text)
            }
            ast::Expr::UnaryOp(u) => match u.operator() {
                Some(ast::UnaryOpKind::Invert) => format!("(! {})", sub(u.expr())),
                Some(ast::UnaryOpKind::Negate) => format!("(__sub 0 {})", sub(u.expr())),
                None => u.syntax().text().to_string(),
            },
            ast::Expr::BinOp(b) => {
                let (l, r) = (sub(b.lhs()), sub(b.rhs()));
                match b.operator() {
                    Some(K::Sub) => format!("(__sub {l} {r})"),
                    Some(K::Mul) => format!("(__mul {l} {r})"),
                    Some(K::Div) => format!("(__div {l} {r})"),
                    Some(K::Less) => format!("(__lessThan {l} {r})"),
                    Some(K::More) => format!("(__lessThan {r} {l})"),
                    Some(K::LessOrEq) => format!("(! (__lessThan {r} {l}))"),
                    Some(K::MoreOrEq) => format!("(! (__lessThan {l} {r}))"),
                    Some(op) => {
                        let sym = match op {
                            K::Concat => "++",
                            K::Update => "//",
                            K::Add => "+",
                            K::And => "&&",
                            K::Or => "||",
                            K::Equal => "==",
                            K::NotEqual => "!=",
                            K::Implication => "->",
                            _ => return b.syntax().text().to_string(),
                        };
                        format!("({l} {sym} {r})")
                    }
                    None => b.syntax().text().to_string(),
                }
            }
            ast::Expr::Apply(a) => {
                // Nix flattens curried calls: `f a b` shows as `(f a b)`.
                let mut args = vec![sub(a.argument())];
                let mut f = a.lambda();
                while let Some(ast::Expr::Apply(inner)) = &f {
                    args.push(sub(inner.argument()));
                    f = inner.lambda();
                }
                args.reverse();
                format!("({} {})", sub(f), args.join(" "))
            }
            ast::Expr::Select(sel) => {
                let mut out = format!("({}).{}", sub(sel.expr()), path(sel.attrpath()));
                if let Some(d) = sel.default_expr() {
                    out.push_str(&format!(" or ({})", self.show(&d)));
                }
                out
            }
            ast::Expr::HasAttr(h) => format!("(({}) ? {})", sub(h.expr()), path(h.attrpath())),
            ast::Expr::List(l) => {
                let mut out = String::from("[ ");
                for item in l.items() {
                    out.push_str(&format!("({}) ", self.show(&item)));
                }
                out.push(']');
                out
            }
            ast::Expr::IfElse(i) => {
                format!("(if {} then {} else {})", sub(i.condition()), sub(i.body()), sub(i.else_body()))
            }
            ast::Expr::Lambda(l) => match l.param() {
                Some(ast::Param::IdentParam(p)) => format!("({}: {})", p.syntax().text(), sub(l.body())),
                Some(ast::Param::Pattern(pat)) => {
                    // Current Nix lists the formals in lexicographic order.
                    let mut formals: Vec<(String, Option<String>)> = pat
                        .pat_entries()
                        .map(|f| {
                            let name = f.ident().map(|i| i.syntax().text().to_string()).unwrap_or_default();
                            (name, f.default().map(|d| self.show(&d)))
                        })
                        .collect();
                    formals.sort();
                    let mut items: Vec<String> = formals
                        .into_iter()
                        .map(|(n, d)| d.map_or_else(|| n.clone(), |d| format!("{n} ? {d}")))
                        .collect();
                    if pat.ellipsis_token().is_some() {
                        items.push("...".to_string());
                    }
                    let bind = pat
                        .pat_bind()
                        .and_then(|b| b.ident())
                        .map(|i| format!(" @ {}", i.syntax().text()))
                        .unwrap_or_default();
                    format!("({{ {} }}{bind}: {})", items.join(", "), sub(l.body()))
                }
                None => l.syntax().text().to_string(),
            },
            // An interpolated string is a concatenation of its parts.
            ast::Expr::Str(st) if st.syntax().first_token().is_none_or(|t| t.text() != "''") => {
                let parts: Vec<String> = st
                    .parts()
                    .map(|p| match p {
                        ast::InterpolPart::Literal(l) => {
                            crate::print::quote_string(&unescape_plain(l.syntax().text()))
                        }
                        ast::InterpolPart::Interpolation(i) => sub(i.expr()),
                    })
                    .collect();
                format!("({})", parts.join(" + "))
            }
            e => e.syntax().text().to_string(),
        }
    }

    fn literal(&mut self, l: &ast::Literal, pos: Pos) -> Result<Expr> {
        let text = l.syntax().text().to_string();
        Ok(match l.kind() {
            ast::LiteralKind::Integer(_) => match text.parse::<i64>() {
                Ok(i) => Expr::Const(Value::Int(i)),
                Err(_) => return Err(err(format!("invalid integer '{text}'"), pos)),
            },
            ast::LiteralKind::Float(_) => match text.parse::<f64>() {
                Ok(f) => Expr::Const(Value::Float(f)),
                Err(_) => return Err(err(format!("invalid float '{text}'"), pos)),
            },
            ast::LiteralKind::Uri(_) => {
                let level = self.cenv.lints.url_literals;
                self.cenv.diagnose(level, "lint-url-literals", pos, || {
                    let how = if level == LintLevel::Fatal { "disallowed" } else { "discouraged" };
                    format!("URL literals are {how}. Consider using a string literal \"{text}\" instead")
                })?;
                Expr::Const(Value::str(text))
            }
        })
    }

    fn string(&mut self, s: &ast::Str, pos: Pos) -> Result<Expr> {
        let multiline = s.syntax().first_token().is_some_and(|t| t.text() == "''");
        let mut parts: Vec<StrPart> = Vec::new();
        for part in s.parts() {
            match part {
                ast::InterpolPart::Literal(lit) => {
                    let raw = lit.syntax().text();
                    if raw.contains('\0') {
                        // Nix's lexer starts a `''` string's text after its first newline.
                        let skip = if multiline && raw.starts_with('\n') { 1 } else { 0 };
                        let at = Pos {
                            file: self.file,
                            offset: u32::from(lit.syntax().text_range().start()) + skip,
                        };
                        return Err(err(nul_message(&raw[skip as usize..]), at));
                    }
                    if multiline {
                        parts.extend(indented_parts(raw));
                    } else {
                        parts.push(StrPart::Lit(unescape_plain(raw)));
                    }
                }
                ast::InterpolPart::Interpolation(i) => {
                    let e = self.child(i.expr(), i.syntax())?;
                    parts.push(StrPart::Interp(e));
                }
            }
        }
        if multiline {
            parts = strip_indentation(parts);
        }
        Ok(self.interp(parts, pos, true))
    }

    fn interp(&mut self, parts: Vec<StrPart>, pos: Pos, string: bool) -> Expr {
        let mut out = Vec::new();
        for p in parts {
            match p {
                StrPart::Lit(s) if s.is_empty() => {}
                StrPart::Lit(s) => {
                    if let Some(Expr::Const(Value::String(prev))) = out.last_mut() {
                        let mut merged = prev.s.clone();
                        merged.push_str(&s);
                        *out.last_mut().unwrap_or_else(|| unreachable!()) = Expr::Const(Value::str(merged));
                    } else {
                        out.push(Expr::Const(Value::str(s)));
                    }
                }
                StrPart::Interp(e) => out.push(e),
                StrPart::Esc(_) => unreachable!("indentation stripping turns escapes into literals"),
            }
        }
        if string {
            match out.len() {
                0 => return Expr::Const(Value::str("")),
                1 if matches!(out[0], Expr::Const(Value::String(_))) => {
                    return out.pop().unwrap_or_else(|| unreachable!());
                }
                _ => {}
            }
            // A leading empty string makes `"${path}"` a string, not a path.
            if !matches!(out[0], Expr::Const(Value::String(_))) {
                out.insert(0, Expr::Const(Value::str("")));
            }
        }
        Expr::Interp(out, pos)
    }

    fn path(&mut self, p: &ast::Path, pos: Pos) -> Result<Expr> {
        let mut parts = Vec::new();
        let mut first = true;
        for part in p.parts() {
            match part {
                ast::InterpolPart::Literal(lit) => {
                    let text = lit.syntax().text().to_string();
                    if first {
                        first = false;
                        if let Some(name) = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                            let find = self.lookup(Sym::new("__findFile"), pos)?;
                            let np = self.lookup(Sym::new("__nixPath"), pos)?;
                            return Ok(Expr::Call(
                                Box::new(find),
                                vec![Rc::new(np), Rc::new(Expr::Const(Value::str(name)))],
                                pos,
                            ));
                        }
                        self.lint_path(&text, pos)?;
                        let resolved = if let Some(rest) = text.strip_prefix("~/") {
                            let home = self
                                .cenv
                                .home
                                .ok_or_else(|| err("cannot resolve '~/': HOME is not set", pos))?;
                            format!("{home}/{rest}")
                        } else if text.starts_with('/') {
                            text.clone()
                        } else {
                            format!("{}/{}", self.cenv.base_dir, text)
                        };
                        let mut canon = canon_path(&resolved);
                        if text.ends_with('/') && text.len() > 1 && canon != "/" {
                            canon.push('/');
                        }
                        parts.push(StrPart::Lit(canon));
                    } else {
                        parts.push(StrPart::Lit(text));
                    }
                }
                ast::InterpolPart::Interpolation(i) => {
                    first = false;
                    let e = self.child(i.expr(), i.syntax())?;
                    parts.push(StrPart::Interp(e));
                }
            }
        }
        if parts.len() == 1
            && let StrPart::Lit(s) = &parts[0]
        {
            return Ok(Expr::Const(Value::path(s.as_str())));
        }
        let mut e = self.interp(parts, pos, false);
        if let Expr::Interp(items, _) = &mut e
            && let Some(Expr::Const(Value::String(s))) = items.first()
        {
            let p = Value::path(s.s.as_str());
            items[0] = Expr::Const(p);
        }
        Ok(e)
    }

    /// The lints on the literal part a path starts with (`/…`, `~/…`, or relative without `./`/`../`).
    fn lint_path(&self, literal: &str, pos: Pos) -> Result<()> {
        let lints = self.cenv.lints;
        let not_portable = |kind: &str| {
            format!(
                "{kind} path literals are not portable. Consider replacing path literal '{literal}' by a string, relative path, or parameter"
            )
        };
        if literal.starts_with('/') {
            self.cenv.diagnose(lints.absolute_paths, "lint-absolute-path-literals", pos, || {
                not_portable("absolute")
            })
        } else if literal.starts_with('~') {
            self.cenv
                .diagnose(lints.absolute_paths, "lint-absolute-path-literals", pos, || not_portable("home"))
        } else if !literal.starts_with('.') {
            self.cenv.diagnose(lints.short_paths, "lint-short-path-literals", pos, || {
                format!(
                    "relative path literal '{literal}' should be prefixed with '.' for clarity: './{literal}'"
                )
            })
        } else {
            Ok(())
        }
    }

    fn attrpath(&mut self, ap: Option<ast::Attrpath>, parent: &SyntaxNode) -> Result<Vec<AttrName>> {
        let ap = ap.ok_or_else(|| err("syntax error, missing attribute path", self.pos(parent)))?;
        let mut out = Vec::new();
        for a in ap.attrs() {
            out.push(self.attr_name(&a)?);
        }
        Ok(out)
    }

    fn attr_name(&mut self, a: &ast::Attr) -> Result<AttrName> {
        let pos = self.pos(a.syntax());
        Ok(match a {
            ast::Attr::Ident(id) => AttrName::Static(self.ident_sym(id)),
            ast::Attr::Dynamic(d) => {
                let e = self.child(d.expr(), d.syntax())?;
                match e {
                    Expr::Const(Value::String(s)) if !s.has_ctx() => AttrName::Static(Sym::new(&s.s)),
                    e => AttrName::Dynamic(e),
                }
            }
            ast::Attr::Str(s) => match self.string(s, pos)? {
                Expr::Const(Value::String(s)) => AttrName::Static(Sym::new(&s.s)),
                e => AttrName::Dynamic(e),
            },
        })
    }

    /// A static name of an attribute-path element, if it is one (strings without interpolation count).
    fn static_name(&self, a: &ast::Attr) -> Option<Sym> {
        match a {
            ast::Attr::Ident(id) => Some(self.ident_sym(id)),
            ast::Attr::Str(s) => {
                let multiline = s.syntax().first_token().is_some_and(|t| t.text() == "''");
                let mut parts = Vec::new();
                for p in s.parts() {
                    match p {
                        ast::InterpolPart::Literal(l) if multiline => {
                            parts.extend(indented_parts(l.syntax().text()))
                        }
                        ast::InterpolPart::Literal(l) => {
                            parts.push(StrPart::Lit(unescape_plain(l.syntax().text())))
                        }
                        ast::InterpolPart::Interpolation(_) => return None,
                    }
                }
                if multiline {
                    parts = strip_indentation(parts);
                }
                let mut s = String::new();
                for p in parts {
                    if let StrPart::Lit(l) = p {
                        s.push_str(&l);
                    }
                }
                Some(Sym::new(&s))
            }
            ast::Attr::Dynamic(d) => match d.expr() {
                Some(ast::Expr::Str(s)) => self.static_name(&ast::Attr::Str(s)),
                _ => None,
            },
        }
    }

    fn collect_attrs(
        &mut self,
        entries: impl Iterator<Item = ast::Entry>,
        rec: bool,
        is_let: bool,
    ) -> Result<PAttrs> {
        let mut p = PAttrs::new(rec);
        for entry in entries {
            match entry {
                ast::Entry::Inherit(inh) => {
                    let from = match inh.from() {
                        Some(f) => {
                            let e = f.expr().ok_or_else(|| err("syntax error", self.pos(f.syntax())))?;
                            p.inherit_from.push(e);
                            Some(p.inherit_from.len() - 1)
                        }
                        None => None,
                    };
                    for a in inh.attrs() {
                        let apos = self.pos(a.syntax());
                        let name = self
                            .static_name(&a)
                            .ok_or_else(|| err("dynamic attributes not allowed in inherit", apos))?;
                        let val = match from {
                            Some(i) => PVal::InheritFrom(i, name, apos),
                            None => PVal::InheritVar(name, apos),
                        };
                        p.push_static(name, val, apos).map_err(|prev| dup_attr(&[name], apos, prev))?;
                    }
                }
                ast::Entry::AttrpathValue(av) => {
                    let (mut ap, mut value) = (None, None);
                    for c in av.syntax().children() {
                        if c.kind() == rnix::SyntaxKind::NODE_ATTRPATH {
                            ap = ap.or_else(|| ast::Attrpath::cast(c));
                        } else if value.is_none() {
                            value = ast::Expr::cast(c);
                        }
                    }
                    let ap = ap.ok_or_else(|| err("syntax error", self.pos(av.syntax())))?;
                    let path: Vec<ast::Attr> = ap.attrs().collect();
                    let value = value.ok_or_else(|| err("syntax error", self.pos(av.syntax())))?;
                    let apos = self.pos(ap.syntax());
                    self.add_attr(&mut p, &[], &path, value, apos, is_let)?;
                }
            }
        }
        Ok(p)
    }

    /// Adds `path = value` to `p`; `prefix` is the path already walked, which duplicate errors name in full.
    fn add_attr(
        &mut self,
        p: &mut PAttrs,
        prefix: &[Sym],
        path: &[ast::Attr],
        value: ast::Expr,
        pos: Pos,
        is_let: bool,
    ) -> Result<()> {
        let first = &path[0];
        let Some(name) = self.static_name(first) else {
            if is_let {
                return Err(err("dynamic attributes not allowed in let", pos));
            }
            let val = if path.len() == 1 {
                PVal::Ast(value)
            } else {
                self.nested_from_path(&path[1..], value, pos)?
            };
            p.dynamics.push((first.clone(), val, pos));
            return Ok(());
        };
        let existing = p.position(name);
        if path.len() == 1 {
            let Some(i) = existing else {
                p.index.insert(name, p.statics.len());
                p.statics.push((name, PVal::Ast(value), pos));
                return Ok(());
            };
            // Defined twice: two attribute-set literals merge (whether or not either is `rec`: the first one's
            // kind wins, as in Nix); anything else is a duplicate.
            let prev_pos = p.statics[i].2;
            match (set_literal(&value), self.as_nested(&mut p.statics[i].1)?) {
                (Some(a), Some(n)) => {
                    let incoming = self.collect_attrs(a.entries(), false, false)?;
                    merge_into(n, incoming)
                }
                _ => Err(dup_attr(&[prefix, &[name]].concat(), pos, prev_pos)),
            }
        } else {
            let Some(i) = existing else {
                let nested = self.nested_from_path(&path[1..], value, pos)?;
                p.index.insert(name, p.statics.len());
                p.statics.push((name, nested, pos));
                return Ok(());
            };
            // A path through an attribute defined as a set literal (even a `rec` one) extends that set.
            let prev_pos = p.statics[i].2;
            match self.as_nested(&mut p.statics[i].1)? {
                Some(n) => self.add_attr(n, &[prefix, &[name]].concat(), &path[1..], value, pos, false),
                None => Err(dup_attr(&[prefix, &[name]].concat(), pos, prev_pos)),
            }
        }
    }

    /// The attribute set under construction that `v` is, turning a set literal into one; `None` when `v` is
    /// not an attribute set literal.
    fn as_nested<'v>(&mut self, v: &'v mut PVal) -> Result<Option<&'v mut PAttrs>> {
        if let PVal::Ast(e) = v
            && let Some(a) = set_literal(e)
        {
            let collected = self.collect_attrs(a.entries(), a.rec_token().is_some(), false)?;
            *v = PVal::Nested(collected);
        }
        Ok(match v {
            PVal::Nested(n) => Some(n),
            _ => None,
        })
    }

    fn nested_from_path(&mut self, path: &[ast::Attr], value: ast::Expr, pos: Pos) -> Result<PVal> {
        let mut n = PAttrs::new(false);
        self.add_attr(&mut n, &[], path, value, pos, false)?;
        Ok(PVal::Nested(n))
    }

    /// `own_scope`: whether the set or `let` pushed a scope of its own (then `inherit x;` looks outside it).
    fn pval(&mut self, v: PVal, inherit_base: u32, own_scope: bool) -> Result<Expr> {
        Ok(match v {
            PVal::Ast(e) => self.expr(&e)?,
            PVal::Nested(n) => self.attrs(n)?,
            PVal::InheritVar(name, pos) if own_scope => self.lookup_outer(name, pos)?,
            PVal::InheritVar(name, pos) => self.lookup(name, pos)?,
            PVal::InheritFrom(i, name, pos) => Expr::Select(Box::new(SelectExpr {
                e: Expr::Var(0, inherit_base + i as u32),
                path: vec![AttrName::Static(name)],
                default: None,
                pos,
            })),
        })
    }

    fn attrs(&mut self, mut p: PAttrs) -> Result<Expr> {
        p.statics.sort_by_key(|a| a.0);
        let has_env = p.rec || !p.inherit_from.is_empty();
        if !has_env {
            let mut statics = Vec::with_capacity(p.statics.len());
            for (name, v, pos) in p.statics {
                let e = self.pval_named(v, 0, name, false)?;
                statics.push((name, AttrValue::Expr(Rc::new(e)), pos));
            }
            let dynamics = self.dynamics(p.dynamics)?;
            return Ok(Expr::Attrs(Box::new(AttrsExpr { has_env, slots: Vec::new(), statics, dynamics })));
        }
        let nstatic = if p.rec { p.statics.len() as u32 } else { 0 };
        let mut names = SymMap::default();
        if p.rec {
            for (i, (n, _, _)) in p.statics.iter().enumerate() {
                names.insert(*n, i as u32);
            }
        }
        self.scopes.push(Scope { names, with: false });
        let r = (|| {
            let mut slots = Vec::new();
            let mut statics = Vec::new();
            for (i, (name, v, pos)) in p.statics.into_iter().enumerate() {
                let e = Rc::new(self.pval_named(v, nstatic, name, true)?);
                if p.rec {
                    slots.push(e);
                    statics.push((name, AttrValue::Slot(i as u32), pos));
                } else {
                    statics.push((name, AttrValue::Expr(e), pos));
                }
            }
            for src in &p.inherit_from {
                slots.push(self.expr_rc(src)?);
            }
            let dynamics = self.dynamics(p.dynamics)?;
            Ok(Expr::Attrs(Box::new(AttrsExpr { has_env, slots, statics, dynamics })))
        })();
        self.scopes.pop();
        r
    }

    fn pval_named(&mut self, v: PVal, inherit_base: u32, name: Sym, own_scope: bool) -> Result<Expr> {
        if let PVal::Ast(ast::Expr::Lambda(l)) = &v {
            let pos = self.pos(l.syntax());
            return Ok(Expr::Lambda(Rc::new(self.lambda(l, pos, Some(name))?)));
        }
        self.pval(v, inherit_base, own_scope)
    }

    fn dynamics(&mut self, d: Vec<(ast::Attr, PVal, Pos)>) -> Result<Vec<(Expr, Rc<Expr>, Pos)>> {
        let mut out = Vec::new();
        for (name, v, pos) in d {
            let n = match self.attr_name(&name)? {
                AttrName::Static(s) => Expr::Const(Value::str(s.as_str())),
                AttrName::Dynamic(e) => e,
            };
            let v = self.pval(v, 0, false)?;
            out.push((n, Rc::new(v), pos));
        }
        Ok(out)
    }

    fn let_in(&mut self, mut p: PAttrs, body: impl FnOnce(&mut Self) -> Result<Expr>) -> Result<Expr> {
        let mut names = SymMap::default();
        for (i, (n, _, _)) in p.statics.iter().enumerate() {
            names.insert(*n, i as u32);
        }
        let nstatic = p.statics.len() as u32;
        self.scopes.push(Scope { names, with: false });
        let r = (|| {
            let mut slots = Vec::new();
            for (name, v, _) in std::mem::take(&mut p.statics) {
                slots.push(Rc::new(self.pval_named(v, nstatic, name, true)?));
            }
            for src in &p.inherit_from {
                slots.push(self.expr_rc(src)?);
            }
            let body = body(self)?;
            Ok(Expr::Let(Box::new(LetExpr { slots, body })))
        })();
        self.scopes.pop();
        r
    }

    fn lambda(&mut self, l: &ast::Lambda, pos: Pos, name: Option<Sym>) -> Result<LambdaDef> {
        let param = l.param().ok_or_else(|| err("syntax error, missing parameter", pos))?;
        match param {
            ast::Param::IdentParam(ip) => {
                let id = ip.ident().ok_or_else(|| err("syntax error", pos))?;
                let s = self.ident_sym(&id);
                self.scopes.push(Scope { names: SymMap::from_iter([(s, 0)]), with: false });
                let body = self.child(l.body(), l.syntax());
                self.scopes.pop();
                Ok(LambdaDef { param: Param::Ident, body: body?, nslots: 1, pos, name, arg: Some(s) })
            }
            ast::Param::Pattern(pat) => {
                let mut names = SymMap::default();
                let mut formals_ast = Vec::new();
                let mut positions = Vec::new();
                for (i, entry) in pat.pat_entries().enumerate() {
                    let id = entry.ident().ok_or_else(|| err("syntax error", pos))?;
                    let s = self.ident_sym(&id);
                    positions.push(self.pos(id.syntax()));
                    if names.insert(s, i as u32).is_some() {
                        return Err(err(
                            format!("duplicate formal function argument '{s}'"),
                            self.pos(id.syntax()),
                        ));
                    }
                    formals_ast.push((s, entry.default()));
                }
                let n = formals_ast.len() as u32;
                let mut at = false;
                let mut arg = None;
                if let Some(bind) = pat.pat_bind() {
                    let id = bind.ident().ok_or_else(|| err("syntax error", pos))?;
                    let s = self.ident_sym(&id);
                    if names.contains_key(&s) {
                        return Err(err(
                            format!("duplicate formal function argument '{s}'"),
                            self.pos(id.syntax()),
                        ));
                    }
                    names.insert(s, n);
                    at = true;
                    arg = Some(s);
                }
                self.scopes.push(Scope { names, with: false });
                let r = (|| {
                    let mut formals = Vec::new();
                    for (s, d) in formals_ast {
                        let d = match d {
                            Some(d) => Some(self.expr_rc(&d)?),
                            None => None,
                        };
                        formals.push((s, d));
                    }
                    let body = self.child(l.body(), l.syntax())?;
                    Ok(LambdaDef {
                        param: Param::Formals {
                            formals,
                            positions,
                            ellipsis: pat.ellipsis_token().is_some(),
                            at,
                        },
                        body,
                        nslots: n + at as u32,
                        pos,
                        name,
                        arg,
                    })
                })();
                self.scopes.pop();
                r
            }
        }
    }
}

/// The first `N` children of `node` that are expressions, found in one walk; rnix's accessors (`lambda()`,
/// `argument()`, …) each walk the children again, and the walks are most of the compiler's time.
fn exprs<const N: usize>(node: &SyntaxNode) -> [Option<ast::Expr>; N] {
    let mut out = std::array::from_fn(|_| None);
    let mut found = node.children().filter_map(ast::Expr::cast);
    for slot in &mut out {
        *slot = found.next();
    }
    out
}

/// Nix's refusal of a string with a NUL byte (strings are C strings in parts of Nix); the NULs show as `␀`.
pub fn nul_message(s: &str) -> String {
    format!(
        "input string '{}' cannot be represented as Nix string because it contains null bytes",
        s.replace('\0', "␀")
    )
}

/// The attribute set literal `e` is (looking through parentheses, which Nix's parser does not keep).
fn set_literal(e: &ast::Expr) -> Option<ast::AttrSet> {
    match e {
        ast::Expr::AttrSet(a) => Some(a.clone()),
        ast::Expr::Paren(p) => p.expr().as_ref().and_then(set_literal),
        _ => None,
    }
}

/// Adds the attributes of `incoming` (a second literal for the same name) to `target`: static names must be new;
/// dynamic attributes and `inherit (e)` sources are appended.
fn merge_into(target: &mut PAttrs, incoming: PAttrs) -> Result<()> {
    let base = target.inherit_from.len();
    target.inherit_from.extend(incoming.inherit_from);
    for (name, v, pos) in incoming.statics {
        let v = match v {
            PVal::InheritFrom(i, n, p) => PVal::InheritFrom(i + base, n, p),
            v => v,
        };
        target.push_static(name, v, pos).map_err(|prev| dup_attr(&[name], pos, prev))?;
    }
    target.dynamics.extend(incoming.dynamics);
    Ok(())
}

fn loc_str(pos: Pos) -> String {
    pos.resolve().map_or_else(|| "«unknown»".to_string(), |l| l.to_string())
}

fn dup_attr(path: &[Sym], pos: Pos, prev: Pos) -> EvalError {
    let names: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
    err(format!("attribute '{}' already defined at {}", names.join("."), loc_str(prev)), pos)
}

enum StrPart {
    Lit(String),
    Interp(Expr),
    /// Text from an escape in a `''` string (`''\n`, `''$`, `'''`): when measuring the indentation it is content
    /// even if it is a space or a newline, as in Nix's lexer. Stripping turns it into `Lit`.
    Esc(String),
}

fn unescape_plain(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else if c == '\r' {
            // Nix normalises CR LF and bare CR inside string literals to LF.
            if chars.as_str().starts_with('\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits the raw text of a `''` string literal into plain runs and escapes (see `StrPart::Esc`).
fn indented_parts(raw: &str) -> Vec<StrPart> {
    let mut parts = Vec::new();
    let mut run_start = 0;
    let mut i = 0;
    while let Some(off) = raw[i..].find("''") {
        let at = i + off;
        let r = &raw[at + 2..];
        let len = if r.starts_with('$') || r.starts_with('\'') {
            3
        } else if let Some(c) = r.strip_prefix('\\').and_then(|r2| r2.chars().next()) {
            3 + c.len_utf8()
        } else {
            // Not an escape (the parser ends the string at a bare `''`); keep it as text.
            i = at + 2;
            continue;
        };
        if run_start < at {
            parts.push(StrPart::Lit(unescape_indented(&raw[run_start..at])));
        }
        parts.push(StrPart::Esc(unescape_indented(&raw[at..at + len])));
        i = at + len;
        run_start = i;
    }
    if run_start < raw.len() {
        parts.push(StrPart::Lit(unescape_indented(&raw[run_start..])));
    }
    parts
}

fn unescape_indented(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let b = raw;
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if let Some(r) = rest.strip_prefix("''") {
            if r.starts_with('$') {
                out.push('$');
                i += 3;
                continue;
            }
            if r.starts_with('\'') {
                out.push_str("''");
                i += 3;
                continue;
            }
            if let Some(r2) = r.strip_prefix('\\') {
                let mut cs = r2.chars();
                match cs.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(o) => out.push(o),
                    None => {}
                }
                i += 3 + r2.chars().next().map_or(0, |c| c.len_utf8());
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c == '\r' {
            out.push('\n');
            i += if rest.starts_with("\r\n") { 2 } else { 1 };
            continue;
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Nix's indentation stripping for `''` strings: drop the smallest indentation of non-empty lines, the initial
/// line if only spaces precede its newline, and a final line of only spaces.
fn strip_indentation(mut parts: Vec<StrPart>) -> Vec<StrPart> {
    if let Some(StrPart::Lit(first)) = parts.first_mut()
        && let Some(nl) = first.find('\n')
        && first[..nl].chars().all(|c| c == ' ')
    {
        first.drain(..=nl);
    }
    let mut at_start = true;
    let mut min_indent = usize::MAX;
    let mut cur = 0usize;
    for p in &parts {
        match p {
            StrPart::Interp(_) | StrPart::Esc(_) => {
                if at_start {
                    at_start = false;
                    min_indent = min_indent.min(cur);
                }
            }
            StrPart::Lit(s) => {
                for c in s.chars() {
                    if at_start {
                        if c == ' ' {
                            cur += 1;
                        } else if c == '\n' {
                            cur = 0;
                        } else {
                            at_start = false;
                            min_indent = min_indent.min(cur);
                        }
                    } else if c == '\n' {
                        at_start = true;
                        cur = 0;
                    }
                }
            }
        }
    }
    if min_indent == usize::MAX {
        min_indent = cur;
    }
    let n = parts.len();
    let mut at_start = true;
    let mut dropped = 0usize;
    let mut out = Vec::with_capacity(n);
    for (idx, p) in parts.into_iter().enumerate() {
        match p {
            StrPart::Interp(e) => {
                at_start = false;
                dropped = 0;
                out.push(StrPart::Interp(e));
            }
            // Escapes only count as content when measuring; here, as in Nix, an escaped newline starts a line.
            StrPart::Lit(s) | StrPart::Esc(s) => {
                let mut s2 = String::with_capacity(s.len());
                for c in s.chars() {
                    if at_start {
                        if c == ' ' {
                            if dropped >= min_indent {
                                s2.push(c);
                            }
                            dropped += 1;
                        } else if c == '\n' {
                            dropped = 0;
                            s2.push(c);
                        } else {
                            at_start = false;
                            dropped = 0;
                            s2.push(c);
                        }
                    } else {
                        s2.push(c);
                        if c == '\n' {
                            at_start = true;
                        }
                    }
                }
                if idx == n - 1
                    && let Some(p) = s2.rfind('\n')
                    && s2[p + 1..].chars().all(|c| c == ' ')
                {
                    s2.truncate(p + 1);
                }
                out.push(StrPart::Lit(s2));
            }
        }
    }
    out
}

/// Makes a path absolute-looking and clean: collapses `//`, `.` and `..` without touching the file system.
pub fn canon_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() { "/".to_string() } else { format!("/{}", parts.join("/")) }
}
