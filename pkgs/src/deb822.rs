//! deb822 control paragraphs, the format shared by `Release`, `Packages`, the dpkg `status` file and `.sources`.
//!
//! The parser borrows from the input and makes one pass with `memchr`, so parsing a full `Packages` file (tens of
//! megabytes) costs little more than reading it.

use memchr::memchr;

/// One paragraph: fields in file order, values with continuation lines kept (joined by `\n`, leading space kept).
#[derive(Debug, Clone, Default)]
pub struct Paragraph<'a> {
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Paragraph<'a> {
    /// The value of a field (case-insensitive name), trimmed; multi-line values keep their inner newlines.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    /// All fields in file order.
    pub fn fields(&self) -> &[(&'a str, &'a str)] {
        &self.fields
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Iterates over the paragraphs of `text`; `#` comment lines are skipped, as deb822 sources allow.
pub fn paragraphs(text: &str) -> Paragraphs<'_> {
    Paragraphs { text, pos: 0 }
}

/// Iterator returned by [`paragraphs`].
#[derive(Debug)]
pub struct Paragraphs<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Paragraph<'a>;

    fn next(&mut self) -> Option<Paragraph<'a>> {
        let bytes = self.text.as_bytes();
        let mut para = Paragraph::default();
        // Start and end of the value of the field being read, so continuation lines extend it in place.
        let mut current: Option<(&'a str, usize, usize)> = None;
        while self.pos < bytes.len() {
            let start = self.pos;
            let end = memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
            self.pos = end + 1;
            let line = &self.text[start..end];
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                if current.is_some() || !para.fields.is_empty() {
                    break;
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, _, vend)) = current.as_mut() {
                    *vend = start + line.len();
                }
                continue;
            }
            if let Some((name, vstart, vend)) = current.take() {
                para.fields.push((name, &self.text[vstart..vend.max(vstart)]));
            }
            match line.find(':') {
                Some(colon) => {
                    let name = line[..colon].trim();
                    current = Some((name, start + colon + 1, start + line.len()));
                }
                // A line without a colon is not a field; ignoring it keeps one bad line from hiding a whole file.
                None => current = None,
            }
        }
        if let Some((name, vstart, vend)) = current.take() {
            para.fields.push((name, &self.text[vstart..vend.max(vstart)]));
        }
        if para.fields.is_empty() { None } else { Some(para) }
    }
}

/// Splits a multi-line field (`SHA256`, `Conffiles`) into its non-empty lines, trimmed.
pub fn lines(value: &str) -> impl Iterator<Item = &str> {
    value.lines().map(str::trim).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_continuations_and_paragraphs() {
        let text = "Package: a\nVersion: 1\nDescription: short\n long line\n .\n more\n\n\n# comment\nPackage: b\r\nDepends: c\n";
        let paras: Vec<_> = paragraphs(text).collect();
        assert_eq!(paras.len(), 2);
        assert_eq!(paras[0].get("package"), Some("a"));
        assert_eq!(paras[0].get("Description"), Some("short\n long line\n .\n more"));
        assert_eq!(paras[1].get("Package"), Some("b"));
        assert_eq!(paras[1].get("Depends"), Some("c"));
        assert_eq!(paras[1].get("Version"), None);
    }

    #[test]
    fn multi_line_value_lines() {
        let text = "SHA256:\n abc 12 main/x\n def 3 main/y\n";
        let p = paragraphs(text).next().unwrap();
        let v: Vec<_> = lines(p.get("SHA256").unwrap()).collect();
        assert_eq!(v, ["abc 12 main/x", "def 3 main/y"]);
    }
}
