//! Hints as a type: an error that carries a `hint:` line for the user, kept apart from the message so that the
//! message stays one line and `report` prints every hint of the cause chain after it.

use std::fmt;

/// An error message with a hint saying what to do instead.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// An error reading `message`, printed with `hint: {hint}` after it.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted { message: message.into(), hint: hint.into() })
}

/// The hints of an error's cause chain, outermost first.
pub fn hints(err: &anyhow::Error) -> Vec<&str> {
    err.chain().filter_map(|c| c.downcast_ref::<Hinted>()).map(|h| h.hint.as_str()).collect()
}
