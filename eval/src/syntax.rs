//! From source text to rnix's syntax tree. rnix tokenizes and parses; this module feeds it (a large source is
//! tokenized on a second thread while the parser builds the tree, and a large `let` is parsed in two halves side by
//! side), turns what Nix ends differently (a bare CR in a comment) into what rnix reads the same way, and words
//! rnix's errors as Nix does.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use rnix::parser::ParseError;
use rnix::tokenizer::{Token, Tokenizer};
use rnix::{NixLanguage, SyntaxKind};
use rowan::{GreenNode, GreenNodeData, Language, NodeOrToken};

use crate::error::{ErrorKind, EvalError};
use crate::source::Pos;

/// Sources at least this large are tokenized on a second thread while the parser builds the tree.
pub(crate) const PIPELINE_MIN: usize = 64 << 10;

/// Parses `text` with rnix.
pub(crate) fn parse(text: &str) -> (GreenNode, Vec<ParseError>) {
    if text.len() < PIPELINE_MIN {
        return rnix::parser::parse(Tokenizer::new(text));
    }
    parse_pipelined(text)
}

/// Tokenizes on a second thread while this one parses. When the source is a `let` (as large files of bindings
/// are), the second thread, done tokenizing, parses the last bindings itself: it cuts the token stream at a
/// binding's `;` about seven tenths in, this thread parses `let <first bindings> in x` and the other
/// `let <last bindings> in <body>`, and the two trees are joined into the one rnix would have built. Should either
/// half not parse, the whole source is parsed again in one piece, so errors are always rnix's own.
fn parse_pipelined(text: &str) -> (GreenNode, Vec<ParseError>) {
    let cut = AtomicBool::new(false);
    let (head, tail) = std::thread::scope(|scope| {
        // Unbounded: the tokenizer runs twice as fast as the parser, and must reach the cut early for the halves to
        // be parsed side by side.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Token<'_>>>();
        let cut = &cut;
        let second = scope.spawn(move || {
            let mut tokens = Tokenizer::new(text);
            let mut split = LetSplit::new(text.len() / 10 * 7);
            let mut batch = Vec::with_capacity(1024);
            while let Some(token) = tokens.next() {
                let at_cut = split.feed(token);
                batch.push(token);
                if at_cut {
                    cut.store(true, Ordering::SeqCst);
                    tx.send(batch).ok()?;
                    drop(tx);
                    let rest = std::iter::once((SyntaxKind::TOKEN_LET, "let")).chain(tokens);
                    return Some(rnix::parser::parse(rest));
                }
                if batch.len() == 1024 {
                    tx.send(std::mem::replace(&mut batch, Vec::with_capacity(1024))).ok()?;
                }
            }
            tx.send(batch).ok()?;
            None
        });
        // Once the stream ends at the cut, `in x` closes the first half's `let`.
        let end = [(SyntaxKind::TOKEN_IN, "in"), (SyntaxKind::TOKEN_IDENT, "x")];
        let tokens = rx.into_iter().flatten().chain(
            std::iter::once(())
                .flat_map(|()| if cut.load(Ordering::SeqCst) { &end[..] } else { &[] })
                .copied(),
        );
        let head = rnix::parser::parse(tokens);
        // The tokenizer cannot panic on any input; a panic there is a bug worth its message.
        (head, second.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
    });
    let Some(tail) = tail else { return head };
    if head.1.is_empty()
        && tail.1.is_empty()
        && let Some(joined) = join_lets(&head.0, &tail.0)
        && usize::from(joined.text_len()) == text.len()
    {
        return (joined, Vec::new());
    }
    rnix::parser::parse(Tokenizer::new(text))
}

/// Finds where a source that is a `let` can be cut in two: after a `;` that ends one of its bindings, at or past
/// a given offset. Brackets, interpolations and nested `let … in` raise the depth; a `;` that ends a `with` or an
/// `assert` ends no binding.
struct LetSplit {
    offset: usize,
    min: usize,
    state: SplitState,
    depth: u32,
    /// Depths of `with` and `assert` whose `;` is still to come.
    pending: Vec<u32>,
    /// The last token was a nested `let`: if a `{` follows, it is the legacy `let { … }`, closed by its brace, not
    /// by an `in`.
    after_let: bool,
}

#[derive(PartialEq)]
enum SplitState {
    Start,
    AfterLet,
    Bindings,
    Done,
}

impl LetSplit {
    fn new(min: usize) -> LetSplit {
        LetSplit { offset: 0, min, state: SplitState::Start, depth: 1, pending: Vec::new(), after_let: false }
    }

    /// Takes the next token; true if the source can be cut right after it.
    fn feed(&mut self, (kind, text): Token<'_>) -> bool {
        use SyntaxKind::*;
        let start = self.offset;
        self.offset += text.len();
        if kind.is_trivia() || self.state == SplitState::Done {
            return false;
        }
        match self.state {
            SplitState::Start => {
                self.state = if kind == TOKEN_LET { SplitState::AfterLet } else { SplitState::Done };
                return false;
            }
            // `let { … }` is the legacy form, a set.
            SplitState::AfterLet if kind == TOKEN_L_BRACE => {
                self.state = SplitState::Done;
                return false;
            }
            _ => self.state = SplitState::Bindings,
        }
        if std::mem::take(&mut self.after_let) && kind == TOKEN_L_BRACE {
            self.depth -= 1;
        }
        self.after_let = kind == TOKEN_LET;
        match kind {
            TOKEN_L_BRACE | TOKEN_L_BRACK | TOKEN_L_PAREN | TOKEN_INTERPOL_START | TOKEN_LET => {
                self.depth += 1
            }
            TOKEN_IN if self.depth == 1 => self.state = SplitState::Done,
            TOKEN_R_BRACE | TOKEN_R_BRACK | TOKEN_R_PAREN | TOKEN_INTERPOL_END | TOKEN_IN => {
                self.depth = self.depth.saturating_sub(1)
            }
            TOKEN_WITH | TOKEN_ASSERT => self.pending.push(self.depth),
            TOKEN_SEMICOLON if self.pending.last() == Some(&self.depth) => {
                self.pending.pop();
            }
            TOKEN_SEMICOLON if self.depth == 1 && start >= self.min => {
                self.state = SplitState::Done;
                return true;
            }
            _ => {}
        }
        false
    }
}

/// Joins `let <A> in x` and `let <B> in <body>` into the tree of `let <A> <B> in <body>`, or `None` if the trees do
/// not have those shapes.
fn join_lets(head: &GreenNode, tail: &GreenNode) -> Option<GreenNode> {
    let raw = NixLanguage::kind_to_raw;
    let is = |el: &NodeOrToken<&GreenNodeData, &rowan::GreenTokenData>, k: SyntaxKind| el.kind() == raw(k);
    let head_root: Vec<_> = head.children().collect();
    let (head_let, before) = head_root.split_last()?;
    let tail_root: Vec<_> = tail.children().collect();
    let (tail_let, after) = tail_root.split_first()?;
    if !is(head_let, SyntaxKind::NODE_LET_IN) || !is(tail_let, SyntaxKind::NODE_LET_IN) {
        return None;
    }
    let head_let: Vec<_> = head_let.as_node()?.children().collect();
    let tail_let: Vec<_> = tail_let.as_node()?.children().collect();
    let [head_let @ .., in_token, x] = &head_let[..] else { return None };
    let [let_token, tail_let @ ..] = &tail_let[..] else { return None };
    if !is(in_token, SyntaxKind::TOKEN_IN)
        || !is(x, SyntaxKind::NODE_IDENT)
        || !is(let_token, SyntaxKind::TOKEN_LET)
    {
        return None;
    }
    let owned = |el: &NodeOrToken<&GreenNodeData, &rowan::GreenTokenData>| match *el {
        NodeOrToken::Node(n) => NodeOrToken::Node(n.to_owned()),
        NodeOrToken::Token(t) => NodeOrToken::Token(t.to_owned()),
    };
    let joined: Vec<_> = head_let.iter().chain(tail_let).map(owned).collect();
    let joined = NodeOrToken::Node(GreenNode::new(raw(SyntaxKind::NODE_LET_IN), joined));
    let root: Vec<_> =
        before.iter().map(owned).chain(std::iter::once(joined)).chain(after.iter().map(owned)).collect();
    Some(GreenNode::new(raw(SyntaxKind::NODE_ROOT), root))
}

/// Nix ends a `#` comment at a bare CR; rnix does not. Turning such a CR into LF keeps offsets and fixes the split.
pub(crate) fn fix_bare_cr_comments(text: &str) -> Cow<'_, str> {
    // Tokenizing costs as much as parsing; only a file with a CR not followed by LF can need it.
    if !text.split('\r').skip(1).any(|rest| !rest.starts_with('\n')) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    loop {
        let mut changed = false;
        let mut offset = 0usize;
        for (kind, tok) in rnix::tokenize(&out) {
            if kind == SyntaxKind::TOKEN_COMMENT && tok.starts_with('#') {
                let b = tok.as_bytes();
                if let Some(i) = (0..b.len()).find(|&i| b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')) {
                    // '\r' and '\n' are both one-byte ASCII, so UTF-8 stays valid.
                    let mut bytes = std::mem::take(&mut out).into_bytes();
                    bytes[offset + i] = b'\n';
                    out = String::from_utf8(bytes).unwrap_or_default();
                    changed = true;
                    break;
                }
            }
            offset += tok.len();
        }
        if !changed {
            return Cow::Owned(out);
        }
    }
}

/// The first parse error as Nix words it, at its place in the source.
pub(crate) fn parse_error(err: &ParseError, file: u32, len: usize) -> EvalError {
    use ParseError as P;
    let at = |r: &rowan::TextRange| u32::from(r.start());
    let (msg, offset) = match err {
        P::Unexpected(r) | P::UnexpectedExtra(r) => ("syntax error, unexpected token".to_string(), at(r)),
        P::UnexpectedWanted(got, r, _) => (format!("syntax error, unexpected {}", kind_name(*got)), at(r)),
        P::UnexpectedDoubleBind(r) => ("syntax error, double binding of a pattern".to_string(), at(r)),
        P::UnexpectedEOF | P::UnexpectedEOFWanted(_) => {
            ("syntax error, unexpected end of file".to_string(), len as u32)
        }
        P::DuplicatedArgs(r, name) => (format!("duplicate formal function argument '{name}'"), at(r)),
        P::RecursionLimitExceeded => ("syntax error, expression nested too deeply".to_string(), 0),
        _ => (format!("syntax error, {err}"), 0),
    };
    EvalError::new(ErrorKind::Parse, msg, Pos { file, offset })
}

/// How Nix's grammar names a token in "unexpected …" messages.
fn kind_name(k: SyntaxKind) -> String {
    use SyntaxKind::*;
    let text = match k {
        TOKEN_L_BRACE => "'{'",
        TOKEN_R_BRACE => "'}'",
        TOKEN_L_BRACK => "'['",
        TOKEN_R_BRACK => "']'",
        TOKEN_L_PAREN => "'('",
        TOKEN_R_PAREN => "')'",
        TOKEN_ASSIGN => "'='",
        TOKEN_AT => "'@'",
        TOKEN_COLON => "':'",
        TOKEN_COMMA => "','",
        TOKEN_DOT => "'.'",
        TOKEN_QUESTION => "'?'",
        TOKEN_SEMICOLON => "';'",
        TOKEN_ADD => "'+'",
        TOKEN_SUB => "'-'",
        TOKEN_MUL => "'*'",
        TOKEN_DIV => "'/'",
        TOKEN_LESS => "'<'",
        TOKEN_MORE => "'>'",
        TOKEN_INVERT => "'!'",
        TOKEN_ELLIPSIS => "ELLIPSIS",
        TOKEN_CONCAT => "CONCAT",
        TOKEN_UPDATE => "UPDATE",
        TOKEN_AND_AND => "AND",
        TOKEN_OR_OR => "OR",
        TOKEN_EQUAL => "EQ",
        TOKEN_NOT_EQUAL => "NEQ",
        TOKEN_LESS_OR_EQ => "LEQ",
        TOKEN_MORE_OR_EQ => "GEQ",
        TOKEN_IMPLICATION => "IMPL",
        TOKEN_IDENT => "ID",
        TOKEN_INTEGER => "INT",
        TOKEN_FLOAT => "FLOAT",
        TOKEN_PATH => "PATH",
        TOKEN_URI => "URI",
        TOKEN_OR => "OR_KW",
        TOKEN_ASSERT | TOKEN_ELSE | TOKEN_IF | TOKEN_IN | TOKEN_INHERIT | TOKEN_LET | TOKEN_REC
        | TOKEN_THEN | TOKEN_WITH => {
            return format!("{k:?}").trim_start_matches("TOKEN_").to_string();
        }
        _ => "",
    };
    if !text.is_empty() {
        return text.to_string();
    }
    let s = format!("{k:?}");
    s.trim_start_matches("TOKEN_").trim_start_matches("NODE_").to_lowercase().replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipelined parse (cut in two or not) builds exactly the tree and errors of one parse of the whole.
    fn same_as_one_parse(src: &str) {
        assert!(src.len() >= PIPELINE_MIN);
        let (green, errors) = parse(src);
        let (want_green, want_errors) = rnix::parser::parse(Tokenizer::new(src));
        assert_eq!(format!("{errors:?}"), format!("{want_errors:?}"));
        assert!(green == want_green, "trees differ");
    }

    /// Whether the source would be cut in two.
    fn cuts(src: &str) -> bool {
        let mut split = LetSplit::new(src.len() / 10 * 7);
        Tokenizer::new(src).any(|t| split.feed(t))
    }

    fn bindings(n: usize, each: impl Fn(usize) -> String) -> String {
        (0..n).map(each).collect()
    }

    #[test]
    fn a_large_let_is_parsed_in_two_halves_into_the_same_tree() {
        let src = format!(
            "# header; with a ; in a comment\nlet\n{}in builtins.length [ {} ]\n# trailing\n",
            bindings(3000, |i| format!(
                "  v{i} = {{ name = \"item-{i}; ${{toString {i}}}\"; tags = [ \"t{}\" ]; }}; /* ; */ f{i} = x: x + {i};\n",
                i % 7
            )),
            bindings(3000, |i| format!("v{i} "))
        );
        assert!(cuts(&src));
        same_as_one_parse(&src);
    }

    #[test]
    fn with_assert_nested_let_and_strings_do_not_cut_inside_a_binding() {
        let src = format!(
            "let\n{}in a0\n",
            bindings(2500, |i| format!(
                "  a{i} = with builtins; assert true; let b = {i}; c = ''x; ${{\"y;\"}}''; in b;\n  \
                 s{i} = rec {{ x = 1; y = x; }}; l{i} = let {{ body = 1; }}; inherit (builtins) map;\n"
            ))
        );
        assert!(cuts(&src));
        same_as_one_parse(&src);
    }

    #[test]
    fn sources_that_are_not_a_let_or_do_not_parse_give_one_parse_results() {
        let set = format!("{{\n{}}}\n", bindings(6000, |i| format!("  a{i} = {i};\n")));
        assert!(!cuts(&set));
        same_as_one_parse(&set);
        let legacy = format!("let {{\n{}  body = a1;\n}}\n", bindings(6000, |i| format!("  a{i} = {i};\n")));
        assert!(!cuts(&legacy));
        same_as_one_parse(&legacy);
        // Errors in either half: the whole is parsed again, so the errors are the one parse's.
        let n = 6000;
        let late = format!(
            "let\n{}in a0\n",
            bindings(n, |i| format!("  a{i} = {};\n", if i == n - 10 { "(" } else { "1" }))
        );
        assert!(cuts(&late));
        same_as_one_parse(&late);
        let early = format!(
            "let\n{}in a0\n",
            bindings(n, |i| format!("  a{i} = {};\n", if i == 10 { "]" } else { "1" }))
        );
        same_as_one_parse(&early);
    }
}
