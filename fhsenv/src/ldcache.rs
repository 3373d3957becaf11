//! Our own reader and writer of glibc's `ld.so.cache` in the `glibc-ld.so.cache1.1` format.
//!
//! The builder (`tree`) writes the cache once per env build, so no `ldconfig` runs at launch. Layout (all
//! little-endian): a 48-byte header (magic, version, entry count, string-table size, endianness flag, extension
//! offset), 24-byte entries (flags, key and value string offsets, unused os version, hwcap), the NUL-terminated
//! strings (offsets count from the start of the file), then an aligned extension block holding the generator string
//! and the `glibc-hwcaps` subdirectory names that hwcap entries index. Entries are sorted the way the dynamic loader's
//! binary search expects: descending by glibc's version-aware name comparison, then by flags descending, hwcaps
//! entries before plain ones.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// `FLAG_ELF`: an ELF library not linked against libc (e.g. the i386 dynamic loader).
pub const FLAG_ELF: i32 = 0x0001;
/// `FLAG_ELF_LIBC6`: an i386 glibc library.
pub const FLAG_ELF_LIBC6: i32 = 0x0003;
/// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`: an x86-64 glibc library.
pub const FLAG_X8664_LIBC6: i32 = 0x0303;

const MAGIC: &[u8; 20] = b"glibc-ld.so.cache1.1";
const HEADER_SIZE: usize = 48;
const ENTRY_SIZE: usize = 24;
const ENDIAN_LITTLE: u8 = 2;
const EXTENSION_MAGIC: u32 = 0xeaa4_2174;
const TAG_GENERATOR: u32 = 0;
const TAG_GLIBC_HWCAPS: u32 = 1;
/// Marks an entry's hwcap field as an index into the `glibc-hwcaps` extension section.
const HWCAP_EXTENSION: u64 = 1 << 62;

/// One cache entry: the loader looks `key` (a soname) up and opens `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The name looked up (a soname, or a development link's name).
    pub key: String,
    /// Absolute path of the library as seen inside the env.
    pub path: String,
    /// Library type flags (`FLAG_*`).
    pub flags: i32,
    /// The `glibc-hwcaps` subdirectory the library lives in (`x86-64-v3`), if any.
    pub hwcaps: Option<String>,
}

/// glibc's library-name order: runs of digits compare as numbers, a digit sorts after a non-digit.
pub fn libcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        if j >= b.len() {
            return Ordering::Greater;
        }
        let (x, y) = (a[i], b[j]);
        match (x.is_ascii_digit(), y.is_ascii_digit()) {
            (true, true) => {
                let (mut va, mut vb) = (0u64, 0u64);
                while i < a.len() && a[i].is_ascii_digit() {
                    va = va.saturating_mul(10).saturating_add(u64::from(a[i] - b'0'));
                    i += 1;
                }
                while j < b.len() && b[j].is_ascii_digit() {
                    vb = vb.saturating_mul(10).saturating_add(u64::from(b[j] - b'0'));
                    j += 1;
                }
                if va != vb {
                    return va.cmp(&vb);
                }
            }
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {
                if x != y {
                    return x.cmp(&y);
                }
                i += 1;
                j += 1;
            }
        }
    }
    if j < b.len() { Ordering::Less } else { Ordering::Equal }
}

/// The order the loader's binary search needs (see the module comment).
fn entry_order(a: &CacheEntry, b: &CacheEntry) -> Ordering {
    libcmp(&b.key, &a.key).then_with(|| b.flags.cmp(&a.flags)).then_with(|| match (&a.hwcaps, &b.hwcaps) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    })
}

/// Serialises entries into cache bytes. Duplicate (key, flags, hwcaps) triples keep the first occurrence.
pub fn encode(entries: &[CacheEntry], generator: &str) -> Vec<u8> {
    let mut seen = std::collections::HashSet::new();
    let mut sorted: Vec<&CacheEntry> =
        entries.iter().filter(|e| seen.insert((e.key.as_str(), e.flags, e.hwcaps.as_deref()))).collect();
    sorted.sort_by(|a, b| entry_order(a, b));

    let mut hwcap_names: Vec<&str> = sorted.iter().filter_map(|e| e.hwcaps.as_deref()).collect();
    hwcap_names.sort_unstable();
    hwcap_names.dedup();

    // The string table follows the entries; offsets are relative to the start of the file.
    let mut table = StringTable {
        base: HEADER_SIZE + ENTRY_SIZE * sorted.len(),
        bytes: Vec::new(),
        seen: HashMap::new(),
    };
    let mut records = Vec::with_capacity(sorted.len());
    for e in &sorted {
        let (k, v) = (table.intern(&e.key), table.intern(&e.path));
        let hwcap = e
            .hwcaps
            .as_deref()
            .map_or(0, |h| HWCAP_EXTENSION | hwcap_names.iter().position(|n| *n == h).unwrap_or(0) as u64);
        records.push((e.flags, k, v, hwcap));
    }
    let generator_offset = table.intern(generator);
    let hwcap_offsets: Vec<u32> = hwcap_names.iter().map(|n| table.intern(n)).collect();
    let strings = table.bytes;
    let strings_start = table.base;

    let mut out = Vec::with_capacity(strings_start + strings.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    out.extend_from_slice(&[ENDIAN_LITTLE, 0, 0, 0]);
    let extension_offset_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 12]);
    debug_assert_eq!(out.len(), HEADER_SIZE);
    for (flags, k, v, hwcap) in records {
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&hwcap.to_le_bytes());
    }
    out.extend_from_slice(&strings);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    let extension_offset = out.len() as u32;
    out[extension_offset_at..extension_offset_at + 4].copy_from_slice(&extension_offset.to_le_bytes());
    let sections: u32 = if hwcap_offsets.is_empty() { 1 } else { 2 };
    let data_start = extension_offset as usize + 8 + 16 * sections as usize;
    out.extend_from_slice(&EXTENSION_MAGIC.to_le_bytes());
    out.extend_from_slice(&sections.to_le_bytes());
    // The generator section points into the string table (it is a plain string there).
    for word in [TAG_GENERATOR, 0, generator_offset, generator.len() as u32] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    if !hwcap_offsets.is_empty() {
        for word in [TAG_GLIBC_HWCAPS, 0, data_start as u32, 4 * hwcap_offsets.len() as u32] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for o in hwcap_offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
    }
    out
}

/// NUL-terminated strings, each stored once.
struct StringTable {
    base: usize,
    bytes: Vec<u8>,
    seen: HashMap<String, u32>,
}

impl StringTable {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&o) = self.seen.get(s) {
            return o;
        }
        let o = (self.base + self.bytes.len()) as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        self.seen.insert(s.to_owned(), o);
        o
    }
}

/// Writes a cache file atomically (temporary file beside it, then rename); returns the number of entries written.
pub fn write(path: &Path, entries: &[CacheEntry], generator: &str) -> Result<usize> {
    let bytes = encode(entries, generator);
    write_atomically(path, &bytes)?;
    Ok(u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]) as usize)
}

/// Writes `bytes` to `path` safely (the workspace's one way: `safefs`), flushed before the rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    safefs::write_file(path, bytes, &safefs::WriteOptions::default()).map_err(Error::io("write", path))
}

/// Parses a `glibc-ld.so.cache1.1` file (also one written by glibc's ldconfig).
pub fn decode(bytes: &[u8], origin: &Path) -> Result<Vec<CacheEntry>> {
    let bad = |reason: &str| Error::Package {
        path: origin.into(),
        reason: format!("not a readable ld.so.cache: {reason}"),
    };
    if bytes.len() < HEADER_SIZE || &bytes[..20] != MAGIC {
        return Err(bad("missing glibc-ld.so.cache1.1 magic"));
    }
    let u32_at = |o: usize| bytes.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let cstr = |o: u32| -> Option<String> {
        let rest = bytes.get(o as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        String::from_utf8(rest[..end].to_vec()).ok()
    };
    let count = u32_at(20).ok_or_else(|| bad("truncated header"))? as usize;
    let extension = u32_at(32).unwrap_or(0);
    let mut hwcap_names = Vec::new();
    if extension != 0 && u32_at(extension as usize) == Some(EXTENSION_MAGIC) {
        let sections = u32_at(extension as usize + 4).unwrap_or(0) as usize;
        for s in 0..sections.min(16) {
            let at = extension as usize + 8 + 16 * s;
            if u32_at(at) == Some(TAG_GLIBC_HWCAPS) {
                let (off, size) =
                    (u32_at(at + 8).unwrap_or(0) as usize, u32_at(at + 12).unwrap_or(0) as usize);
                for i in 0..size / 4 {
                    hwcap_names
                        .push(u32_at(off + 4 * i).and_then(cstr).ok_or_else(|| bad("bad hwcaps section"))?);
                }
            }
        }
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let at = HEADER_SIZE + ENTRY_SIZE * i;
        let record = bytes.get(at..at + ENTRY_SIZE).ok_or_else(|| bad("truncated entry table"))?;
        let flags = i32::from_le_bytes([record[0], record[1], record[2], record[3]]);
        let key = u32_at(at + 4).and_then(cstr).ok_or_else(|| bad("bad key offset"))?;
        let path = u32_at(at + 8).and_then(cstr).ok_or_else(|| bad("bad value offset"))?;
        let hwcap = u64::from_le_bytes(record[16..24].try_into().unwrap_or([0; 8]));
        let hwcaps = if hwcap & HWCAP_EXTENSION != 0 {
            Some(
                hwcap_names
                    .get((hwcap & 0xffff_ffff) as usize)
                    .cloned()
                    .ok_or_else(|| bad("bad hwcap index"))?,
            )
        } else {
            None
        };
        entries.push(CacheEntry { key, path, flags, hwcaps });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libcmp_is_version_aware() {
        assert_eq!(libcmp("libfoo.so.10", "libfoo.so.9"), Ordering::Greater);
        assert_eq!(libcmp("libfoo.so.1", "libfoo.so.1"), Ordering::Equal);
        assert_eq!(libcmp("libfoo.so", "libfoo.so.1"), Ordering::Less);
        assert_eq!(libcmp("liba1", "libab"), Ordering::Greater);
        assert_eq!(libcmp("libX11.so.6", "libx11.so.6"), Ordering::Less);
    }

    fn entry(key: &str, path: &str, flags: i32, hwcaps: Option<&str>) -> CacheEntry {
        CacheEntry { key: key.into(), path: path.into(), flags, hwcaps: hwcaps.map(Into::into) }
    }

    #[test]
    fn round_trips_and_sorts_descending() {
        let entries = vec![
            entry("libz.so.1", "/usr/lib/libz.so.1", FLAG_X8664_LIBC6, None),
            entry("libfoo.so.1", "/usr/lib32/libfoo.so.1", FLAG_ELF_LIBC6, None),
            entry("libfoo.so.1", "/usr/lib/libfoo.so.1", FLAG_X8664_LIBC6, None),
            entry(
                "libfoo.so.1",
                "/usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so.1",
                FLAG_X8664_LIBC6,
                Some("x86-64-v3"),
            ),
            entry("libz.so.1", "/elsewhere/libz.so.1", FLAG_X8664_LIBC6, None),
        ];
        let bytes = encode(&entries, "fhskit");
        let back = decode(&bytes, Path::new("c")).unwrap();
        let keys: Vec<_> = back.iter().map(|e| (e.key.as_str(), e.flags, e.hwcaps.is_some())).collect();
        assert_eq!(
            keys,
            [
                ("libz.so.1", FLAG_X8664_LIBC6, false),
                ("libfoo.so.1", FLAG_X8664_LIBC6, true),
                ("libfoo.so.1", FLAG_X8664_LIBC6, false),
                ("libfoo.so.1", FLAG_ELF_LIBC6, false)
            ]
        );
        assert_eq!(back[0].path, "/usr/lib/libz.so.1", "first duplicate wins");
        assert_eq!(back[1].hwcaps.as_deref(), Some("x86-64-v3"));
    }

    #[test]
    fn reads_the_host_cache() {
        let host = Path::new("/etc/ld.so.cache");
        let Ok(bytes) = std::fs::read(host) else { return };
        let entries = decode(&bytes, host).unwrap();
        assert!(entries.iter().any(|e| e.key == "libc.so.6" && e.flags == FLAG_X8664_LIBC6));
        for pair in entries.windows(2) {
            assert_ne!(
                entry_order(&pair[0], &pair[1]),
                Ordering::Greater,
                "{:?} before {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}
