//! Source files and positions: every parsed text is registered here so that a `Pos` (file index + byte offset,
//! packed into 8 bytes) can later be turned into `file:line:column` for errors, `__curPos` and `unsafeGetAttrPos`.

use std::cell::RefCell;
use std::rc::Rc;

/// A position in a registered source: which file and which byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Pos {
    /// Index into the source table plus one; 0 means "no position".
    pub file: u32,
    pub offset: u32,
}

/// A registered source text.
#[derive(Debug)]
pub struct Source {
    /// How the file is named in messages: a path, `«string»` or `«stdin»`.
    pub name: Rc<str>,
    /// The text, kept for line/column computation and error excerpts.
    pub text: Rc<str>,
    line_starts: Vec<u32>,
}

thread_local! {
    static SOURCES: RefCell<Vec<Rc<Source>>> = const { RefCell::new(Vec::new()) };
}

/// Registers a text and returns its file index for `Pos`.
pub fn register(name: &str, text: Rc<str>) -> u32 {
    let mut line_starts = vec![0u32];
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            line_starts.push(i as u32 + 1);
        }
    }
    SOURCES.with(|s| {
        let mut s = s.borrow_mut();
        s.push(Rc::new(Source { name: name.into(), text, line_starts }));
        s.len() as u32
    })
}

/// A resolved position: file name, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Rc<str>,
    pub line: u32,
    pub column: u32,
    /// The text of the line, for error excerpts.
    pub line_text: String,
}

impl Pos {
    pub fn none() -> Pos {
        Pos::default()
    }

    pub fn is_none(self) -> bool {
        self.file == 0
    }

    pub fn resolve(self) -> Option<Location> {
        if self.file == 0 {
            return None;
        }
        let src = SOURCES.with(|s| s.borrow().get(self.file as usize - 1).cloned())?;
        let line_idx = match src.line_starts.binary_search(&self.offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = src.line_starts[line_idx] as usize;
        let off = (self.offset as usize).min(src.text.len());
        let column = src.text.get(start..off).map_or(off - start, |s| s.chars().count()) + 1;
        let end = src.text[start..].find('\n').map_or(src.text.len(), |e| start + e);
        Some(Location {
            file: src.name.clone(),
            line: line_idx as u32 + 1,
            column: column as u32,
            line_text: src.text[start..end].to_string(),
        })
    }
}

/// The lines before and after a position's line, for error excerpts (`None` at the start or end of the text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextLines {
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pos {
    pub fn context_lines(self) -> Option<ContextLines> {
        if self.file == 0 {
            return None;
        }
        let src = SOURCES.with(|s| s.borrow().get(self.file as usize - 1).cloned())?;
        let line_idx = match src.line_starts.binary_search(&self.offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line = |i: usize| -> Option<String> {
            let start = *src.line_starts.get(i)? as usize;
            if start > src.text.len() {
                return None;
            }
            let end = src.text[start..].find('\n').map_or(src.text.len(), |e| start + e);
            Some(src.text[start..end].to_string())
        };
        Some(ContextLines { prev: line_idx.checked_sub(1).and_then(line), next: line(line_idx + 1) })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}
