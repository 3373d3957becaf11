//! The verified `Release` paragraph: suite metadata, `Valid-Until`, and the size and SHA-256 of every index file
//! below `dists/<suite>/`, against which [`crate::index`] checks each download.

use std::collections::BTreeMap;

use crate::deb822;
use crate::error::{Error, Result};

/// Size and SHA-256 of one index file, from the `SHA256:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub size: u64,
    pub sha256: String,
}

/// A parsed release file.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub date: Option<i64>,
    /// Seconds since the epoch and the text as written.
    pub valid_until: Option<(i64, String)>,
    pub acquire_by_hash: bool,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// Path relative to `dists/<suite>/` → size and hash.
    pub files: BTreeMap<String, FileEntry>,
}

impl Release {
    /// Parses the (already verified) release text.
    pub fn parse(text: &str, url: &str) -> Result<Release> {
        let bad = |reason: String| Error::Release { url: url.to_owned(), reason };
        let para = deb822::paragraphs(text).next().ok_or_else(|| bad("empty".into()))?;
        let mut files = BTreeMap::new();
        let sums = para.get("SHA256").ok_or_else(|| bad("no SHA256 field".into()))?;
        for line in deb822::lines(sums) {
            let mut w = line.split_whitespace();
            let (Some(hash), Some(size), Some(path), None) = (w.next(), w.next(), w.next(), w.next()) else {
                return Err(bad(format!("malformed SHA256 line '{line}'")));
            };
            let size = size.parse().map_err(|_| bad(format!("malformed size in '{line}'")))?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("malformed SHA256 in '{line}'")));
            }
            files.insert(path.to_owned(), FileEntry { size, sha256: hash.to_ascii_lowercase() });
        }
        let date = match para.get("Date") {
            Some(d) => Some(parse_date(d).ok_or_else(|| bad(format!("cannot parse Date '{d}'")))?),
            None => None,
        };
        let valid_until = match para.get("Valid-Until") {
            Some(d) => Some((
                parse_date(d).ok_or_else(|| bad(format!("cannot parse Valid-Until '{d}'")))?,
                d.to_owned(),
            )),
            None => None,
        };
        let words = |f: &str| {
            para.get(f).map(|v| v.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
        };
        Ok(Release {
            suite: para.get("Suite").map(str::to_owned),
            codename: para.get("Codename").map(str::to_owned),
            date,
            valid_until,
            acquire_by_hash: para.get("Acquire-By-Hash").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
            architectures: words("Architectures"),
            components: words("Components"),
            files,
        })
    }

    /// Fails when `Valid-Until` lies before `now` (seconds since the epoch).
    pub fn check_valid_until(&self, now: i64, url: &str) -> Result<()> {
        match &self.valid_until {
            Some((t, text)) if *t < now => {
                Err(Error::Expired { url: url.to_owned(), valid_until: text.clone() })
            }
            _ => Ok(()),
        }
    }
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Parses the RFC 2822 dates of release files: `Sat, 02 Dec 2023 10:00:00 UTC` (the weekday is optional; zones
/// `UTC`, `GMT`, `Z` or `±hhmm`).
pub fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = match text.split_once(',') {
        Some((_, rest)) => rest.trim(),
        None => text,
    };
    let mut w = text.split_whitespace();
    let day: i64 = w.next()?.parse().ok()?;
    let month = match w.next()?.to_ascii_lowercase().as_str() {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "may" => 5,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    let year: i64 = w.next()?.parse().ok()?;
    let mut hms = w.next()?.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let s: i64 = hms.next().map_or(Some(0), |s| s.parse().ok())?;
    let offset = match w.next().unwrap_or("UTC") {
        "UTC" | "GMT" | "Z" | "+0000" | "-0000" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let hh: i64 = z[1..3].parse().ok()?;
            let mm: i64 = z[3..5].parse().ok()?;
            let off = hh * 3600 + mm * 60;
            if z.starts_with('-') { -off } else { off }
        }
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Formats seconds since the epoch the way release files write dates.
pub fn format_date(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        [(m - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} UTC", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(parse_date("Sat, 02 Dec 2023 10:00:00 UTC"), Some(1_701_511_200));
        assert_eq!(parse_date("02 Dec 2023 11:00:00 +0100"), Some(1_701_511_200));
        assert_eq!(format_date(1_701_511_200), "Sat, 02 Dec 2023 10:00:00 UTC");
        assert_eq!(parse_date("garbage"), None);
    }

    #[test]
    fn parses_release_and_checks_validity() {
        let text = format!(
            "Suite: testing\nValid-Until: {}\nAcquire-By-Hash: yes\nSHA256:\n {} 12 main/binary-amd64/Packages\n",
            format_date(100),
            "a".repeat(64)
        );
        let r = Release::parse(&text, "u").unwrap();
        assert!(r.acquire_by_hash);
        assert_eq!(r.files["main/binary-amd64/Packages"].size, 12);
        assert!(r.check_valid_until(99, "u").is_ok());
        assert!(matches!(r.check_valid_until(101, "u"), Err(Error::Expired { .. })));
        assert!(Release::parse("Suite: x\n", "u").is_err());
    }
}
