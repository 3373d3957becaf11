//! The config file `fhskit shim install` writes and the shim reads for programs whose environment holds no
//! `NIX_LD*` variables (e.g. after `env -i`): `key=value` lines, `#` comments, blank lines ignored.
//!
//! Keys: `loader` (the real ld.so) and `library-path` (`:`-separated directories). Both hold paths inside the root
//! the shim is installed under (see [`crate::system::root_of`]); the shim prefixes that root when it reads them.

/// The key naming the real loader.
pub const LOADER_KEY: &str = "loader";
/// The key naming the default library directories.
pub const LIBRARY_PATH_KEY: &str = "library-path";

/// The values of one config file, borrowed from its text. Empty values count as absent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Config<'a> {
    /// `loader=`: path of the real ld.so.
    pub loader: Option<&'a [u8]>,
    /// `library-path=`: `:`-separated library directories.
    pub library_path: Option<&'a [u8]>,
    /// The 1-based number of the first line that is neither blank, a comment nor `key=value`.
    pub bad_line: Option<usize>,
}

/// Parses a config file. Unknown keys are skipped so that older shims read newer files; the last value of a key
/// wins.
pub fn parse(text: &[u8]) -> Config<'_> {
    let mut config = Config::default();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = trim(line);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            config.bad_line.get_or_insert(index + 1);
            continue;
        };
        let key = trim(&line[..eq]);
        let value = trim(&line[eq + 1..]);
        let value = if value.is_empty() { None } else { Some(value) };
        if key == LOADER_KEY.as_bytes() {
            config.loader = value;
        } else if key == LIBRARY_PATH_KEY.as_bytes() {
            config.library_path = value;
        }
    }
    config
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_comments_and_bad_lines() {
        let text =
            b"# written by fhskit\n\nloader = /var/lib/ld.so\r\nfuture-key=1\nnonsense\nlibrary-path=/a:/b\n";
        let config = parse(text);
        assert_eq!(config.loader, Some(&b"/var/lib/ld.so"[..]));
        assert_eq!(config.library_path, Some(&b"/a:/b"[..]));
        assert_eq!(config.bad_line, Some(5));
    }

    #[test]
    fn empty_values_are_absent() {
        let config = parse(b"loader=\nlibrary-path=   \n");
        assert_eq!(config, Config::default());
    }
}
