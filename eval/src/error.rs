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
        let mut body = String::new();
        if show_trace && !self.trace.is_empty() {
            // As Nix: a frame already shown is held back; more than five held back in a row are summarised.
            let mut seen = std::collections::HashSet::new();
            let mut skipped: Vec<&TraceFrame> = Vec::new();
            let flush = |body: &mut String,
                         skipped: &mut Vec<&TraceFrame>,
                         seen: &mut std::collections::HashSet<_>| {
                if skipped.len() > 5 {
                    body.push_str(&format!("\n({} duplicate frames omitted)\n", skipped.len()));
                    seen.clear();
                } else {
                    for frame in skipped.iter() {
                        push_frame(body, frame);
                    }
                }
                skipped.clear();
            };
            for frame in self.trace.iter().rev() {
                if !seen.insert((frame.pos, frame.msg.as_str())) {
                    skipped.push(frame);
                    continue;
                }
                flush(&mut body, &mut skipped, &mut seen);
                push_frame(&mut body, frame);
            }
            flush(&mut body, &mut skipped, &mut seen);
            body.push_str("\nerror: ");
        }
        body.push_str(&self.msg);
        body.push('\n');
        body.push_str(&position_text(self.pos, ""));
        indent_message("error: ", &body)
    }
}

fn push_frame(body: &mut String, frame: &TraceFrame) {
    body.push_str(&format!("\n… {}\n", frame.msg));
    body.push_str(&position_text(frame.pos, "  "));
}

/// A warning (`prefix` is `warning: ` or `evaluation warning: `) as Nix prints it: the message and, if known, the
/// position with a source excerpt.
pub fn render_warning(prefix: &str, msg: &str, pos: Pos) -> String {
    indent_message(prefix, &format!("{msg}\n{}", position_text(pos, "")))
}

/// `at FILE:LINE:COL:` and the lines around it (the one before, the line with a caret under the column, the one
/// after), each line number right-aligned in five columns, as Nix's `printCodeLines`.
pub fn position_text(pos: Pos, indent: &str) -> String {
    let Some(loc) = pos.resolve() else { return String::new() };
    let mut out = format!("{indent}at {loc}:");
    if let Some(lines) = pos.context_lines() {
        if let Some(prev) = &lines.prev {
            out.push_str(&format!("\n {:>5}| {prev}", loc.line - 1));
        }
        out.push_str(&format!("\n {:>5}| {}", loc.line, loc.line_text));
        out.push_str(&format!("\n      |{}^", " ".repeat(loc.column as usize)));
        if let Some(next) = &lines.next {
            out.push_str(&format!("\n {:>5}| {next}", loc.line + 1));
        }
        out.push('\n');
    }
    out
}

/// Nix's layout of a message: the first line after `prefix`, the others indented by its width, trailing
/// whitespace removed from every line and from the end.
fn indent_message(prefix: &str, body: &str) -> String {
    let pad = " ".repeat(prefix.chars().count());
    let mut out = String::with_capacity(body.len() + 64);
    for (i, line) in body.trim_end().split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let full = format!("{}{line}", if i == 0 { prefix } else { &pad });
        out.push_str(full.trim_end());
    }
    out
}
