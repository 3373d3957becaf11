//! Output conventions of every command, in one place: what `--json` prints, and when colour is allowed.
//!
//! - `--json` prints one JSON document: compact, on one line, followed by a newline, written when the command has
//!   its answer (a list is a JSON array, a record an object). A command that streams results as it finds them
//!   would print JSON Lines instead (one document per line); none does today. Each `--json` says so in `--help`.
//! - Colour only on a terminal: log lines and progress bars are plain when stderr is a pipe or a file, or when
//!   `NO_COLOR` is set or `TERM=dumb`. Error text (`error: …`, `caused by:`, `hint:`) is never coloured.

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
    fn json_is_one_line() {
        let mut out = Vec::new();
        json(&mut out, &serde_json::json!({"a": [1, 2], "b": {"c": "d"}})).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"a\":[1,2],\"b\":{\"c\":\"d\"}}\n");
    }
}
