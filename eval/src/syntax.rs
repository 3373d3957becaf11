//! From source text to rnix's syntax tree. rnix tokenizes and parses; this module feeds it (a large source is
//! tokenized on a second thread while the parser builds the tree), turns what Nix ends differently (a bare CR in a
//! comment) into what rnix reads the same way, and words rnix's errors as Nix does.

use std::borrow::Cow;

use rnix::SyntaxKind;
use rnix::parser::ParseError;
use rnix::tokenizer::{Token, Tokenizer};

use crate::error::{ErrorKind, EvalError};
use crate::source::Pos;

/// Sources at least this large are tokenized on a second thread while the parser builds the tree.
pub(crate) const PIPELINE_MIN: usize = 64 << 10;

/// Parses `text` with rnix.
pub(crate) fn parse(text: &str) -> (rowan::GreenNode, Vec<ParseError>) {
    if text.len() < PIPELINE_MIN {
        return rnix::parser::parse(Tokenizer::new(text));
    }
    std::thread::scope(|scope| {
        // The tokenizer outruns the parser; a short queue keeps the tokens in flight few and their memory warm.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Token<'_>>>(8);
        scope.spawn(move || {
            let mut tokens = Tokenizer::new(text);
            loop {
                let batch: Vec<_> = tokens.by_ref().take(1024).collect();
                if batch.is_empty() || tx.send(batch).is_err() {
                    break;
                }
            }
        });
        rnix::parser::parse(rx.into_iter().flatten())
    })
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
