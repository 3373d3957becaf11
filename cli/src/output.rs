//! Output conventions of every command, in one place: what `--json` prints, and when colour is allowed.
//!
//! - `--json` prints one JSON document: compact, on one line, followed by a newline, written when the command has
//!   its answer (a list is a JSON array, a record an object). A command that streams results as it finds them
//!   would print JSON Lines instead (one document per line); none does today. Each `--json` says so in `--help`.
//! - Colour only on a terminal: log lines and progress bars are plain when stderr is a pipe or a file, or when
//!   `NO_COLOR` is set or `TERM=dumb`. Error text (`error: …`, `caused by:`, `hint:`) is never coloured.
//! - Text that comes from evaluated code (an evaluation error's message, `builtins.trace`) may hold terminal escape
//!   sequences of its own (nixpkgs' module system colours its messages): as Nix does, they reach stderr only when
//!   colour is allowed there, and then only the colour ones (`ESC [ … m`).

use std::io::{IsTerminal, Write};

use anyhow::Result;
use serde::Serialize;

/// The help of every `--json` that prints one document.
pub const JSON_HELP: &str = "Print one JSON document (compact, on one line) instead of text";

/// Writes `value` as one compact JSON document and a newline.
pub fn json(out: &mut impl Write, value: &impl Serialize) -> Result<()> {
    // Serialised first, so that a closed pipe is the plain `io::Error` that ends the command quietly.
    let mut text = serde_json::to_vec(value)?;
    text.push(b'\n');
    out.write_all(&text)?;
    Ok(())
}

/// Whether log lines on stderr may be coloured: stderr is a terminal and the user has not asked for plain text.
pub fn colour_on_stderr() -> bool {
    colour_allowed(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"), std::env::var_os("TERM"))
}

/// Evaluated text as it may go to stderr: with every escape sequence removed, or with only the colour ones kept
/// when `keep_colour` (stderr is a terminal that allows colour).
pub fn filter_escapes(text: &str, keep_colour: bool) -> std::borrow::Cow<'_, str> {
    if !text.contains('\x1b') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        let mut end = start + 1;
        let mut colour = false;
        match chars.peek().map(|&(_, c)| c) {
            // A control sequence: parameter bytes, intermediate bytes, one final byte.
            Some('[') => {
                chars.next();
                end += 1;
                while let Some(&(i, c)) = chars.peek().filter(|(_, c)| ('\x30'..='\x3f').contains(c)) {
                    chars.next();
                    end = i + c.len_utf8();
                }
                while let Some(&(i, c)) = chars.peek().filter(|(_, c)| ('\x20'..='\x2f').contains(c)) {
                    chars.next();
                    end = i + c.len_utf8();
                }
                if let Some(&(i, c)) = chars.peek().filter(|(_, c)| ('\x40'..='\x7e').contains(c)) {
                    chars.next();
                    end = i + 1;
                    colour = c == 'm';
                }
            }
            // An operating system command (a window title, a hyperlink): up to BEL or the string terminator.
            Some(']') => {
                chars.next();
                while let Some((i, c)) = chars.next() {
                    end = i + 1;
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' && chars.peek().is_some_and(|&(_, c)| c == '\\') {
                        chars.next();
                        end = i + 2;
                        break;
                    }
                }
            }
            // Any other escape is two characters.
            Some(c) if ('\x40'..='\x5f').contains(&c) => {
                chars.next();
            }
            _ => {}
        }
        if keep_colour && colour {
            out.push_str(&text[start..end]);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn colour_allowed(
    terminal: bool,
    no_color: Option<std::ffi::OsString>,
    term: Option<std::ffi::OsString>,
) -> bool {
    // NO_COLOR set to anything but the empty string turns colour off (no-color.org).
    terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_opt_out() {
        assert!(colour_allowed(true, None, Some("xterm".into())));
        assert!(!colour_allowed(false, None, Some("xterm".into())));
        assert!(!colour_allowed(true, Some("1".into()), None));
        assert!(colour_allowed(true, Some("".into()), None));
        assert!(!colour_allowed(true, None, Some("dumb".into())));
    }

    #[test]
    fn escapes_leave_evaluated_text_unless_colour_is_allowed() {
        let text = "\x1b[1;35mwarning\x1b[0m: \x1b]8;;http://x\x07link\x1b]8;;\x1b\\ \x1b[2K\x1bMdone \x1b";
        assert_eq!(filter_escapes(text, false), "warning: link done ");
        assert_eq!(filter_escapes(text, true), "\x1b[1;35mwarning\x1b[0m: link done ");
        assert!(matches!(filter_escapes("plain ü", false), std::borrow::Cow::Borrowed("plain ü")));
        // A sequence cut short ends the text; multi-byte characters after an escape survive.
        assert_eq!(filter_escapes("a\x1b[1;ü", false), "aü");
    }

    #[test]
    fn json_is_one_line() {
        let mut out = Vec::new();
        json(&mut out, &serde_json::json!({"a": [1, 2], "b": {"c": "d"}})).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"a\":[1,2],\"b\":{\"c\":\"d\"}}\n");
    }
}
