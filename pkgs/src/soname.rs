//! The soname index: which packages ship a library (by soname) or an executable (by path), built from a suite's
//! `Contents-<arch>` index and stored as a compact file read through `mmap`.
//!
//! Building makes one pass over the decompressed bytes (decompression runs on a second thread), keeps only lines
//! under library directories whose name contains `.so` and lines directly in `bin`/`sbin` directories, and writes
//! entries sorted by (basename, directory) so a lookup is a binary search. Contents lines carry qualified names
//! (`libs/libfoo1`, `non-free/libs/foo`); the index keeps the bare package names.
//!
//! **Ambiguity rule** (recorded here and in the README): when several packages ship a soname in a standard library
//! directory (`lib`, `usr/lib`, `lib64`, `usr/lib64`, `lib32`, `usr/lib32`, `libx32`, `usr/libx32`, or the
//! multiarch `…/<triplet>` below `lib` or `usr/lib`), the preferred provider is, in order: a package whose name
//! matches the soname (`libX11.so.6` ~ `libx11-6`, `libssl.so.3` ~ `libssl3t64`: letters and digits compared
//! case-insensitively, a `t64` suffix ignored), then the shortest package name, then the alphabetically first.
//! Files only in other directories (private library dirs) are reported but never preferred.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use memchr::{memchr, memrchr};

use crate::cache::write_atomic;
use crate::compression::Compression;
use crate::error::{Error, Result, io};

const MAGIC: &[u8; 8] = b"FHSKSNI1";
const HEADER_LEN: usize = 8 + 4 * 8;
const ENTRY_LEN: usize = 20;

/// What a build produced.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct BuildStats {
    pub lines: u64,
    pub entries: u64,
    pub packages: u64,
}

#[derive(Debug, Default)]
struct Builder {
    strings: Vec<u8>,
    /// (name offset, name length, dir id, first package id index, package count)
    entries: Vec<[u32; 5]>,
    pkg_ids: Vec<u32>,
    packages: HashMap<Box<[u8]>, u32>,
    package_names: Vec<(u32, u32)>,
    dirs: HashMap<Box<[u8]>, u32>,
    dir_names: Vec<(u32, u32)>,
    lines: u64,
}

fn is_lib_root(path: &[u8]) -> bool {
    let rest = path.strip_prefix(b"usr/").unwrap_or(path);
    rest.starts_with(b"lib")
}

fn is_bin_dir(dir: &[u8]) -> bool {
    matches!(dir, b"bin" | b"sbin" | b"usr/bin" | b"usr/sbin" | b"usr/games" | b"usr/local/bin")
}

/// Whether `dir` is a directory the dynamic loader searches by default (or a multiarch one).
pub fn is_standard_lib_dir(dir: &str) -> bool {
    let rest = dir.strip_prefix("usr/").unwrap_or(dir);
    match rest {
        "lib" | "lib64" | "lib32" | "libx32" => true,
        _ => rest.strip_prefix("lib/").is_some_and(|t| !t.contains('/') && t.contains("-linux-")),
    }
}

impl Builder {
    fn intern(
        map: &mut HashMap<Box<[u8]>, u32>,
        names: &mut Vec<(u32, u32)>,
        strings: &mut Vec<u8>,
        s: &[u8],
    ) -> u32 {
        if let Some(&id) = map.get(s) {
            return id;
        }
        let id = names.len() as u32;
        names.push((strings.len() as u32, s.len() as u32));
        strings.extend_from_slice(s);
        map.insert(s.into(), id);
        id
    }

    /// Feeds every non-empty line of `text` (the last one may lack its newline).
    fn lines_of(&mut self, text: &[u8]) {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len())) {
            if end > start {
                self.line(&text[start..end]);
            }
            start = end + 1;
        }
    }

    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        if !(is_lib_root(line)
            || line.starts_with(b"bin/")
            || line.starts_with(b"sbin/")
            || line.starts_with(b"usr/"))
        {
            return;
        }
        let Some(sep) = memrchr(b' ', line).into_iter().chain(memrchr(b'\t', line)).max() else { return };
        let pkgs = &line[sep + 1..];
        let mut path = &line[..sep];
        while let [rest @ .., b' ' | b'\t'] = path {
            path = rest;
        }
        let (dir, name) = match memrchr(b'/', path) {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let wanted =
            if is_lib_root(path) { memchr::memmem::find(name, b".so").is_some() } else { is_bin_dir(dir) };
        if !wanted || name.is_empty() || pkgs.is_empty() {
            return;
        }
        let dir_id = Self::intern(&mut self.dirs, &mut self.dir_names, &mut self.strings, dir);
        let name_off = self.strings.len() as u32;
        self.strings.extend_from_slice(name);
        let first = self.pkg_ids.len() as u32;
        for qualified in pkgs.split(|&b| b == b',') {
            let bare = match memrchr(b'/', qualified) {
                Some(i) => &qualified[i + 1..],
                None => qualified,
            };
            if bare.is_empty() {
                continue;
            }
            let id = Self::intern(&mut self.packages, &mut self.package_names, &mut self.strings, bare);
            self.pkg_ids.push(id);
        }
        let count = self.pkg_ids.len() as u32 - first;
        self.entries.push([name_off, name.len() as u32, dir_id, first, count]);
    }

    fn finish(mut self, out: &Path) -> Result<BuildStats> {
        let strings = std::mem::take(&mut self.strings);
        let dir_names = std::mem::take(&mut self.dir_names);
        let s = |off: u32, len: u32| &strings[off as usize..(off + len) as usize];
        self.entries.sort_unstable_by(|a, b| {
            s(a[0], a[1]).cmp(s(b[0], b[1])).then_with(|| {
                let (da, db) = (dir_names[a[2] as usize], dir_names[b[2] as usize]);
                s(da.0, da.1).cmp(s(db.0, db.1))
            })
        });
        let mut buf = Vec::with_capacity(
            HEADER_LEN
                + self.entries.len() * ENTRY_LEN
                + self.pkg_ids.len() * 4
                + (self.package_names.len() + dir_names.len()) * 8
                + strings.len(),
        );
        let counts = [
            self.entries.len(),
            self.pkg_ids.len(),
            self.package_names.len(),
            dir_names.len(),
            strings.len(),
            self.lines as usize,
            0,
            0,
        ];
        buf.extend_from_slice(MAGIC);
        for c in counts {
            buf.extend_from_slice(&u32::try_from(c).unwrap_or(u32::MAX).to_le_bytes());
        }
        for e in &self.entries {
            for v in e {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        for id in &self.pkg_ids {
            buf.extend_from_slice(&id.to_le_bytes());
        }
        for (off, len) in self.package_names.iter().chain(dir_names.iter()) {
            buf.extend_from_slice(&off.to_le_bytes());
            buf.extend_from_slice(&len.to_le_bytes());
        }
        buf.extend_from_slice(&strings);
        write_atomic(out, &buf)?;
        Ok(BuildStats {
            lines: self.lines,
            entries: self.entries.len() as u64,
            packages: self.package_names.len() as u64,
        })
    }
}

/// Builds the index at `out` from decompressed `Contents` data read from `input` (any reader: a decoder of the
/// `.gz`, a file). Decompression runs on its own thread while this one scans lines.
pub fn build_from_reader<R: Read + Send>(input: R, out: &Path) -> Result<BuildStats> {
    build_chunked(input, &out.display().to_string(), out, 4 << 20)
}

/// Builds the index at `out` from whole, still compressed `Contents` files, each given with its name (whose suffix
/// selects the decompressor; a URL is fine) and its verified bytes, as `update` has them. The files are decompressed
/// as one stream on a second thread while this one scans, so the decompressed text is never held in memory.
pub fn build_from_compressed(files: &[(String, Vec<u8>)], out: &Path) -> Result<BuildStats> {
    let mut stream: Box<dyn Read + Send + '_> = Box::new(std::io::empty());
    for (name, data) in files {
        let format = Compression::from_name(name).ok_or_else(|| Error::Decompress {
            path: name.clone(),
            reason: "unsupported compression".into(),
        })?;
        let decoder = format
            .reader(data.as_slice())
            .map_err(|e| Error::Decompress { path: name.clone(), reason: e.to_string() })?;
        // A newline between files, so a file without a final newline does not run into the next one.
        stream = Box::new(stream.chain(decoder).chain(&b"\n"[..]));
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    build_chunked(stream, &names.join(", "), out, 4 << 20)
}

fn build_chunked<R: Read + Send>(input: R, source: &str, out: &Path, chunk_len: usize) -> Result<BuildStats> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let (ret_tx, ret_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut builder = Builder::default();
    let read_result = std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> std::io::Result<()> {
            let mut input = input;
            loop {
                let mut chunk = ret_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(chunk_len));
                chunk.clear();
                chunk.resize(chunk_len, 0);
                let mut filled = 0;
                while filled < chunk_len {
                    match input.read(&mut chunk[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                chunk.truncate(filled);
                let done = filled == 0;
                if tx.send(chunk).is_err() || done {
                    return Ok(());
                }
            }
        });
        let mut carry: Vec<u8> = Vec::new();
        for chunk in rx {
            if chunk.is_empty() {
                break;
            }
            let mut start = 0;
            if !carry.is_empty() {
                match memchr(b'\n', &chunk) {
                    Some(i) => {
                        carry.extend_from_slice(&chunk[..i]);
                        builder.line(&carry);
                        carry.clear();
                        start = i + 1;
                    }
                    None => {
                        carry.extend_from_slice(&chunk);
                        ret_tx.send(chunk).ok();
                        continue;
                    }
                }
            }
            let tail = memrchr(b'\n', &chunk[start..]).map_or(start, |i| start + i + 1);
            builder.lines_of(&chunk[start..tail]);
            carry.extend_from_slice(&chunk[tail..]);
            ret_tx.send(chunk).ok();
        }
        if !carry.is_empty() {
            builder.line(&carry);
        }
        reader.join().unwrap_or_else(|_| Err(std::io::Error::other("decompression thread panicked")))
    });
    read_result.map_err(|e| Error::Decompress { path: source.to_owned(), reason: e.to_string() })?;
    builder.finish(out)
}

/// Builds the index from in-memory decompressed `Contents` data.
pub fn build(contents: &[u8], out: &Path) -> Result<BuildStats> {
    let mut builder = Builder::default();
    builder.lines_of(contents);
    builder.finish(out)
}

/// An index that builds nothing: what a suite without `Contents` gets, so lookups answer "no provider".
pub fn write_empty(out: &Path) -> Result<()> {
    Builder::default().finish(out).map(|_| ())
}

/// One file a lookup found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hit {
    /// Path as in Contents (no leading `/`).
    pub path: String,
    pub packages: Vec<String>,
    /// Whether the file sits in a standard library directory (or a bin directory for executables).
    pub standard: bool,
}

/// A memory-mapped index file.
#[derive(Debug)]
pub struct SonameIndex {
    map: memmap2::Mmap,
    path: PathBuf,
    n_entries: usize,
    n_pkg_ids: usize,
    n_packages: usize,
    n_dirs: usize,
    entries_at: usize,
    pkg_ids_at: usize,
    packages_at: usize,
    dirs_at: usize,
    strings_at: usize,
    strings_len: usize,
}

impl SonameIndex {
    pub fn open(path: &Path) -> Result<SonameIndex> {
        let file = File::open(path).map_err(io("open soname index", path))?;
        // SAFETY: index files are only ever replaced by rename (write_atomic), never modified in place, so the
        // mapped bytes cannot change under us; every read below is bounds-checked.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io("map soname index", path))?;
        let bad = |reason: &str| Error::Index { path: path.to_owned(), reason: reason.to_owned() };
        if map.len() < HEADER_LEN || &map[..8] != MAGIC {
            return Err(bad("not a soname index (bad magic)"));
        }
        let word =
            |i: usize| u32::from_le_bytes(map[8 + i * 4..12 + i * 4].try_into().unwrap_or([0; 4])) as usize;
        let (n_entries, n_pkg_ids, n_packages, n_dirs, strings_len) =
            (word(0), word(1), word(2), word(3), word(4));
        let entries_at = HEADER_LEN;
        let pkg_ids_at = entries_at + n_entries * ENTRY_LEN;
        let packages_at = pkg_ids_at + n_pkg_ids * 4;
        let dirs_at = packages_at + n_packages * 8;
        let strings_at = dirs_at + n_dirs * 8;
        if strings_at + strings_len != map.len() {
            return Err(bad("truncated or corrupt (section sizes do not add up)"));
        }
        Ok(SonameIndex {
            map,
            path: path.to_owned(),
            n_entries,
            n_pkg_ids,
            n_packages,
            n_dirs,
            entries_at,
            pkg_ids_at,
            packages_at,
            dirs_at,
            strings_at,
            strings_len,
        })
    }

    pub fn len(&self) -> usize {
        self.n_entries
    }

    pub fn is_empty(&self) -> bool {
        self.n_entries == 0
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        self.map.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&self, off: u32, len: u32) -> Option<&[u8]> {
        let (off, len) = (off as usize, len as usize);
        if off + len > self.strings_len {
            return None;
        }
        self.map.get(self.strings_at + off..self.strings_at + off + len)
    }

    fn entry(&self, i: usize) -> Option<[u32; 5]> {
        let at = self.entries_at + i * ENTRY_LEN;
        Some([
            self.u32_at(at)?,
            self.u32_at(at + 4)?,
            self.u32_at(at + 8)?,
            self.u32_at(at + 12)?,
            self.u32_at(at + 16)?,
        ])
    }

    fn name_of(&self, i: usize) -> &[u8] {
        self.entry(i).and_then(|e| self.string(e[0], e[1])).unwrap_or(b"")
    }

    fn table_string(&self, table_at: usize, count: usize, id: u32) -> Option<&[u8]> {
        if id as usize >= count {
            return None;
        }
        let at = table_at + id as usize * 8;
        self.string(self.u32_at(at)?, self.u32_at(at + 4)?)
    }

    fn corrupt(&self) -> Error {
        Error::Index { path: self.path.clone(), reason: "corrupt entry".into() }
    }

    /// All files named `basename`.
    pub fn lookup_name(&self, basename: &str) -> Result<Vec<Hit>> {
        let key = basename.as_bytes();
        let (mut lo, mut hi) = (0usize, self.n_entries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.name_of(mid) < key { lo = mid + 1 } else { hi = mid }
        }
        let mut hits = Vec::new();
        let mut i = lo;
        while i < self.n_entries && self.name_of(i) == key {
            let e = self.entry(i).ok_or_else(|| self.corrupt())?;
            let dir = self.table_string(self.dirs_at, self.n_dirs, e[2]).ok_or_else(|| self.corrupt())?;
            let dir = String::from_utf8_lossy(dir).into_owned();
            let mut packages = Vec::new();
            for k in 0..e[4] as usize {
                let idx = e[3] as usize + k;
                if idx >= self.n_pkg_ids {
                    return Err(self.corrupt());
                }
                let id = self.u32_at(self.pkg_ids_at + idx * 4).ok_or_else(|| self.corrupt())?;
                let name =
                    self.table_string(self.packages_at, self.n_packages, id).ok_or_else(|| self.corrupt())?;
                packages.push(String::from_utf8_lossy(name).into_owned());
            }
            let standard = is_standard_lib_dir(&dir) || is_bin_dir(dir.as_bytes());
            let path = if dir.is_empty() { basename.to_owned() } else { format!("{dir}/{basename}") };
            hits.push(Hit { path, packages, standard });
            i += 1;
        }
        Ok(hits)
    }

    /// Files matching a query: a path (containing `/`, leading `/` optional) matches exactly; a bare name matches
    /// every file with that basename.
    pub fn lookup(&self, query: &str) -> Result<Vec<Hit>> {
        let q = query.trim_start_matches('/');
        match q.rsplit_once('/') {
            Some((_, base)) => Ok(self.lookup_name(base)?.into_iter().filter(|h| h.path == q).collect()),
            None => self.lookup_name(q),
        }
    }
}

/// Letters and digits of a name, lowercased: the form the ambiguity rule compares.
fn squash(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// Whether a package name matches a soname in the sense of the ambiguity rule.
pub fn name_matches_soname(package: &str, soname: &str) -> bool {
    let Some(so) = soname.find(".so") else { return false };
    let stem = &soname[..so];
    let version = soname[so + 3..].trim_start_matches('.');
    let version = version.split('.').next().unwrap_or("");
    let want = squash(&format!("{stem}{version}"));
    let pkg = package.strip_suffix("t64").unwrap_or(package);
    squash(pkg) == want
}

/// Orders candidate packages by the ambiguity rule; the first is the preferred provider.
pub fn rank_providers(soname: &str, packages: &mut [String]) {
    packages.sort_by(|a, b| {
        name_matches_soname(b, soname)
            .cmp(&name_matches_soname(a, soname))
            .then(a.len().cmp(&b.len()))
            .then_with(|| a.cmp(b))
    });
}

/// The preferred provider among `hits` for a soname query: packages shipping it in a standard directory ranked by
/// the ambiguity rule; `None` when only private directories have it.
pub fn preferred(soname: &str, hits: &[Hit]) -> Option<String> {
    let mut candidates: Vec<String> =
        hits.iter().filter(|h| h.standard).flat_map(|h| h.packages.clone()).collect();
    candidates.sort();
    candidates.dedup();
    rank_providers(soname, &mut candidates);
    candidates.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENTS: &str = "\
bin/ls                                                  utils/coreutils
etc/foo.conf                                            misc/foo
usr/lib/x86_64-linux-gnu/libX11.so.6                    libs/libx11-6
usr/lib/x86_64-linux-gnu/libX11.so.6.4.0                libs/libx11-6
usr/lib/x86_64-linux-gnu/libSDL2-2.0.so.0               libs/libsdl2-compat-shim,libs/libsdl2-2.0-0
usr/lib/firefox-esr/libmozgtk.so                        web/firefox-esr
usr/lib/x86_64-linux-gnu/libssl.so.3                    libs/libssl3t64
lib/x86_64-linux-gnu/libc.so.6                          libs/libc6
usr/share/doc/libc6/copyright                           libs/libc6
usr/lib/x86_64-linux-gnu/libfoo.so.1                    non-free/libs/libfoo1,libs/libfoo-compat
usr/lib/x86_64-linux-gnu/libfoo.so.1                    libs/zz-other
usr/lib/path with space/libq.so.1                       libs/libq1
";

    fn index() -> (tempfile::TempDir, SonameIndex) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("i.idx");
        let stats = build(CONTENTS.as_bytes(), &out).unwrap();
        assert_eq!(stats.lines, 12);
        assert_eq!(stats.entries, 10);
        let idx = SonameIndex::open(&out).unwrap();
        (dir, idx)
    }

    #[test]
    fn lookups_by_name_and_path() {
        let (_d, idx) = index();
        let hits = idx.lookup("libX11.so.6").unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].path, "usr/lib/x86_64-linux-gnu/libX11.so.6");
        assert_eq!(hits[0].packages, ["libx11-6"]);
        assert!(hits[0].standard);
        assert_eq!(idx.lookup("/bin/ls").unwrap()[0].packages, ["coreutils"]);
        assert!(idx.lookup("/usr/bin/ls").unwrap().is_empty());
        assert!(idx.lookup("copyright").unwrap().is_empty());
        let moz = idx.lookup("libmozgtk.so").unwrap();
        assert!(!moz[0].standard);
        assert_eq!(preferred("libmozgtk.so", &moz), None);
        assert_eq!(idx.lookup("libq.so.1").unwrap()[0].path, "usr/lib/path with space/libq.so.1");
        assert!(idx.lookup("libnothere.so.9").unwrap().is_empty());
    }

    #[test]
    fn ambiguity_rule() {
        let (_d, idx) = index();
        let sdl = idx.lookup("libSDL2-2.0.so.0").unwrap();
        assert_eq!(preferred("libSDL2-2.0.so.0", &sdl).as_deref(), Some("libsdl2-2.0-0"));
        let foo = idx.lookup("libfoo.so.1").unwrap();
        assert_eq!(foo.len(), 2, "a path listed on two lines gives two hits");
        assert_eq!(preferred("libfoo.so.1", &foo).as_deref(), Some("libfoo1"));
        assert!(name_matches_soname("libssl3t64", "libssl.so.3"));
        assert!(name_matches_soname("libglib2.0-0t64", "libglib-2.0.so.0"));
        assert!(name_matches_soname("libstdc++6", "libstdc++.so.6"));
        let mut p = vec!["zz".to_owned(), "bbb".to_owned(), "aaa".to_owned()];
        rank_providers("libnone.so.1", &mut p);
        assert_eq!(p, ["zz", "aaa", "bbb"]);
    }

    #[test]
    fn rejects_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad");
        std::fs::write(&p, b"FHSKSNI1garbage").unwrap();
        assert!(SonameIndex::open(&p).is_err());
        std::fs::write(&p, b"nope").unwrap();
        assert!(SonameIndex::open(&p).is_err());
    }

    #[test]
    fn build_from_compressed_files_matches_in_memory_build() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = CONTENTS.split_at(CONTENTS.find("usr/lib/x86_64-linux-gnu/libssl").unwrap());
        // The first file lacks its final newline; the files are joined as separate lines all the same.
        let first = first.trim_end();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(first.as_bytes()).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(second.as_bytes()).unwrap();
        let files = vec![
            ("http://127.0.0.1:1/dists/s/main/Contents-amd64.gz".to_owned(), gz.finish().unwrap()),
            ("http://127.0.0.1:1/dists/s/contrib/Contents-amd64.xz".to_owned(), xz.finish().unwrap()),
        ];
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        build(format!("{first}\n{second}").as_bytes(), &a).unwrap();
        let stats = build_from_compressed(&files, &b).unwrap();
        assert_eq!(stats.lines, 12);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // Corrupt data names the file.
        let bad =
            vec![("http://127.0.0.1:1/dists/s/main/Contents-amd64.gz".to_owned(), b"not gzip".to_vec())];
        let err = build_from_compressed(&bad, &b).unwrap_err().to_string();
        assert!(err.contains("Contents-amd64.gz"), "{err}");
    }

    #[test]
    fn streaming_build_matches_in_memory_build() {
        let dir = tempfile::tempdir().unwrap();
        let mut big = String::new();
        for i in 0..20000 {
            big.push_str(&format!("usr/lib/x86_64-linux-gnu/libgen{i}.so.1   libs/libgen{i}\n"));
        }
        big.push_str(CONTENTS);
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        build(big.as_bytes(), &a).unwrap();
        build_chunked(std::io::Cursor::new(big.as_bytes().to_vec()), "big", &b, 1000).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let idx = SonameIndex::open(&b).unwrap();
        assert_eq!(idx.lookup("libgen19999.so.1").unwrap()[0].packages, ["libgen19999"]);
    }
}
