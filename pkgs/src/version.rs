//! Debian version numbers (`[epoch:]upstream[-revision]`) and dpkg's ordering of them.
//!
//! The comparison follows deb-version(7): epochs numerically, then upstream and revision by alternating
//! non-digit runs (letters before other characters, `~` before everything, even the end) and digit runs compared
//! numerically. The resolver and the host-package matcher use it.

use std::cmp::Ordering;
use std::fmt;

/// A Debian version, kept as written; ordering and equality follow dpkg (`1.0` equals `0:1.0-0`).
#[derive(Debug, Clone)]
pub struct Version(String);

impl Version {
    pub fn new(text: impl Into<String>) -> Self {
        Version(text.into().trim().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Epoch, upstream version and revision (empty when absent).
    pub fn parts(&self) -> (u64, &str, &str) {
        split(&self.0)
    }
}

fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((up, rev)) => (epoch, up, rev),
        None => (epoch, rest, ""),
    }
}

/// dpkg's weight of one character in a non-digit run; `0` stands for the end of the string and for digits.
fn order(c: u8) -> i32 {
    match c {
        b'~' => -1,
        0 => 0,
        c if c.is_ascii_digit() => 0,
        c if c.is_ascii_alphabetic() => i32::from(c),
        c => i32::from(c) + 256,
    }
}

/// Compares two upstream versions or two revisions.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let at = |i: usize| a.get(i).copied().unwrap_or(0);
    let bt = |i: usize| b.get(i).copied().unwrap_or(0);
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !at(i).is_ascii_digit()) || (j < b.len() && !bt(j).is_ascii_digit()) {
            let (ac, bc) = (order(at(i)), order(bt(j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while at(i) == b'0' {
            i += 1;
        }
        while bt(j) == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while at(i).is_ascii_digit() && bt(j).is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = at(i).cmp(&bt(j));
            }
            i += 1;
            j += 1;
        }
        if at(i).is_ascii_digit() {
            return Ordering::Greater;
        }
        if bt(j).is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (ea, ua, ra) = self.parts();
        let (eb, ub, rb) = other.parts();
        ea.cmp(&eb).then_with(|| compare_part(ua, ub)).then_with(|| compare_part(ra, rb))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        Version::new(a).cmp(&Version::new(b))
    }

    #[test]
    fn dpkg_ordering_rules() {
        use Ordering::*;
        // Pairs from deb-version(7) and dpkg's own test suite semantics.
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.0-1", "1.0-2", Less),
            ("1:0.1", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~~a", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.1", Less),
            ("1.0-1", "1.0-1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.01", "1.1", Equal),
            ("1.0.0", "1.0", Greater),
            ("2.30-7", "2.30-7+deb12u1", Less),
            ("1:1.2.13.dfsg-1", "1.3", Greater),
            ("1.2.3-1~bpo12+1", "1.2.3-1", Less),
            ("9", "10", Less),
            ("a", "b", Less),
            ("1-1-1", "1-1", Greater),
            ("1.0-1", "1.0-a", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(cmp(a, b), want, "{a} vs {b}");
            assert_eq!(cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn parts_split_epoch_and_last_hyphen() {
        assert_eq!(Version::new("2:1.2-3-4").parts(), (2, "1.2-3", "4"));
        assert_eq!(Version::new("1.2").parts(), (0, "1.2", ""));
    }
}
