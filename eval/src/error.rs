//! Evaluation and parse errors: a message, where it happened, and the trace of enclosing calls that
//! `--show-trace` prints. Formatting follows Nix: `error: …` followed by the position and a source excerpt.

use crate::source::Pos;

pub type Result<T> = std::result::Result<T, EvalError>;

/// What kind of failure: decides whether `builtins.tryEval` may catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A syntax or scope error found before evaluation.
    Parse,
    /// `throw` (catchable).
    Throw,
    /// A failed `assert` (catchable).
    Assert,
    /// `abort`.
    Abort,
    /// A value forced while it was being evaluated.
    InfiniteRecursion,
    /// Evaluation nested deeper than the stack allows.
    StackOverflow,
    /// Reading files or writing store objects failed.
    Io,
    /// Any other evaluation error (type errors, missing attributes, …).
    Eval,
}

/// One frame of the call trace.
#[derive(Clone, Debug)]
pub struct TraceFrame {
    pub pos: Pos,
    pub msg: String,
}

/// An error with its position and trace. The parts live behind one pointer so that `Result<Value>`, returned by
/// every step of evaluation, stays two words wide.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", .0.msg)]
pub struct EvalError(Box<ErrorParts>);

/// What an `EvalError` holds; reached through `Deref`, so `e.msg` and `e.kind` read as fields.
#[derive(Clone, Debug)]
pub struct ErrorParts {
    pub kind: ErrorKind,
    pub msg: String,
    pub pos: Pos,
    pub trace: Vec<TraceFrame>,
}

impl std::ops::Deref for EvalError {
    type Target = ErrorParts;
    fn deref(&self) -> &ErrorParts {
        &self.0
    }
}

impl std::ops::DerefMut for EvalError {
    fn deref_mut(&mut self) -> &mut ErrorParts {
        &mut self.0
    }
}

impl EvalError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>, pos: Pos) -> EvalError {
        EvalError(Box::new(ErrorParts { kind, msg: msg.into(), pos, trace: Vec::new() }))
    }

    pub fn eval(msg: impl Into<String>, pos: Pos) -> EvalError {
        EvalError::new(ErrorKind::Eval, msg, pos)
    }

    /// Whether `builtins.tryEval` catches this error.
    pub fn catchable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throw | ErrorKind::Assert)
    }

    /// Sets the position if none is known yet (errors raised deep inside builtins get the call site).
    pub fn at(mut self, pos: Pos) -> EvalError {
        if self.pos.is_none() {
            self.pos = pos;
        }
        self
    }

    pub fn add_trace(mut self, pos: Pos, msg: impl Into<String>) -> EvalError {
        if self.trace.len() < 10_000 {
            self.trace.push(TraceFrame { pos, msg: msg.into() });
        }
        self
    }

    /// Renders the error as Nix does: the message, its position with a source excerpt and, with `show_trace`,
    /// the enclosing frames (outermost first).
    pub fn render(&self, show_trace: bool) -> String {
        let mut out = String::from("error:");
        if show_trace {
            for frame in self.trace.iter().rev() {
                out.push_str(&format!("\n       … {}", frame.msg));
                push_position(&mut out, frame.pos, "         ");
                out.push('\n');
            }
            if !self.trace.is_empty() {
                out.push_str("\n       error: ");
            } else {
                out.push(' ');
            }
        } else {
            out.push(' ');
        }
        out.push_str(&self.msg);
        push_position(&mut out, self.pos, "       ");
        out
    }
}

fn push_position(out: &mut String, pos: Pos, indent: &str) {
    if let Some(loc) = pos.resolve() {
        out.push_str(&format!("\n{indent}at {loc}:"));
        let n = loc.line.to_string();
        let pad = " ".repeat(n.len());
        out.push_str(&format!("\n{indent}   {n}| {}", loc.line_text));
        let caret_pad: String = loc
            .line_text
            .chars()
            .take(loc.column as usize - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("\n{indent}   {pad}| {caret_pad}^"));
    }
}
