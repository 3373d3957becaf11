//! `--build-resolution-cache`: the `.note.nixos.ldcache` note (owner `NixOS`, type `0x63a86cb6`) that a patched
//! glibc reads to resolve `DT_NEEDED` entries without walking the run path.
//!
//! The descriptor is a sequence of NUL-terminated pairs `soname`, `entries`, closed by one more NUL, ordered by
//! soname. `entries` joins with `:` one item per run-path directory, in order: `=dir/soname` where the library is
//! readable, `?dir` for a directory whose contents can only be known at run time (empty, relative, using
//! `$ORIGIN`-style tokens, missing or unsearchable now, or holding `glibc-hwcaps` subdirectories the loader probes),
//! nothing for a searchable directory without it. A library with no item (or a name with a `/`, which the loader
//! opens directly) gets no pair. `edit.rs` decides when to build or drop the note; `layout.rs` places it in new
//! space with its own `PT_NOTE` and section header, or removes an old one.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::elf::Elf;
use crate::raw::*;

pub const OWNER: &[u8] = b"NixOS";
pub const NOTE_TYPE: u32 = 0x63a8_6cb6;
pub const SECTION_NAME: &[u8] = b".note.nixos.ldcache";

/// An existing resolution-cache note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Its section header, when section headers name one `.note.nixos.ldcache` (patchelf finds it by that name).
    pub section: Option<usize>,
    /// Program headers (`PT_NOTE`, or the `PT_LOAD` patchelf makes for it) covering exactly the note.
    pub phdrs: Vec<usize>,
    pub off: u64,
    pub size: u64,
    /// The descriptor of its first record, when that record lies within the note and the file.
    pub desc: Option<Vec<u8>>,
}

/// Finds the resolution-cache note: by section name when the file has section headers, else by owner and type in
/// the `PT_NOTE` segments.
pub fn find(elf: &Elf<'_>) -> Option<Existing> {
    match elf.sections() {
        Ok(shdrs) if !shdrs.is_empty() => {
            let (i, sh) = shdrs
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, s)| elf.section_name(&shdrs, s) == SECTION_NAME)?;
            let size = if sh.sh_type == SHT_NOBITS { 0 } else { sh.sh_size };
            Some(Existing {
                section: Some(i),
                phdrs: covering(elf, sh.sh_offset, size),
                off: sh.sh_offset,
                size,
                desc: first_descriptor(elf, sh.sh_offset, size),
            })
        }
        _ => find_in_segments(elf),
    }
}

fn covering(elf: &Elf<'_>, off: u64, size: u64) -> Vec<usize> {
    (0..elf.phdrs.len())
        .filter(|&i| {
            let p = elf.phdrs[i];
            matches!(p.p_type, PT_NOTE | PT_LOAD) && p.p_offset == off && p.p_filesz == size && size > 0
        })
        .collect()
}

/// The descriptor of the note record at `off`, if the record fits in `size` bytes and in the file.
fn first_descriptor(elf: &Elf<'_>, off: u64, size: u64) -> Option<Vec<u8>> {
    let fmt = elf.fmt;
    let avail = size.min((elf.data.len() as u64).checked_sub(off)?);
    if avail < 12 {
        return None;
    }
    let namesz = u64::from(fmt.u32(elf.data, off, "").ok()?).div_ceil(4) * 4;
    let descsz = u64::from(fmt.u32(elf.data, off + 4, "").ok()?);
    if namesz > avail - 12 || descsz > avail - 12 - namesz {
        return None;
    }
    Some(slice(elf.data, off + 12 + namesz, descsz, "").ok()?.to_vec())
}

fn find_in_segments(elf: &Elf<'_>) -> Option<Existing> {
    let fmt = elf.fmt;
    for p in elf.phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
        let mut at = p.p_offset;
        let end = p.file_end();
        while at + 12 <= end {
            let namesz = u64::from(fmt.u32(elf.data, at, "").ok()?);
            let descsz = u64::from(fmt.u32(elf.data, at + 4, "").ok()?);
            let ty = fmt.u32(elf.data, at + 8, "").ok()?;
            let name_at = at + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            let next = desc_at.checked_add(descsz.div_ceil(4) * 4)?;
            if next > end {
                break;
            }
            let name = slice(elf.data, name_at, namesz, "").ok()?;
            if ty == NOTE_TYPE && name.strip_suffix(b"\0").unwrap_or(name) == OWNER {
                let desc = slice(elf.data, desc_at, descsz, "").ok()?.to_vec();
                return Some(Existing {
                    section: None,
                    phdrs: covering(elf, at, next - at),
                    off: at,
                    size: next - at,
                    desc: Some(desc),
                });
            }
            at = next;
        }
    }
    None
}

/// What resolving the needed libraries along the run path gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No `DT_NEEDED` entry, or no run path.
    NothingToResolve,
    /// Run path and libraries, but no library got an item.
    NoneResolved,
    Descriptor(Vec<u8>),
}

/// Resolves `needed` libraries along `rpath` into a descriptor.
pub fn resolve(needed: &[Vec<u8>], rpath: &[u8]) -> Resolution {
    if needed.is_empty() || rpath.is_empty() {
        return Resolution::NothingToResolve;
    }
    // Each library once (patchelf repeats the items of a library named twice in DT_NEEDED; the loader needs one).
    let mut searched: Vec<&Vec<u8>> = needed.iter().filter(|l| !l.contains(&b'/')).collect();
    searched.sort();
    searched.dedup();
    let mut cache: BTreeMap<&[u8], Vec<Vec<u8>>> = BTreeMap::new();
    for dir in rpath.split(|&b| b == b':') {
        if needs_search_hint(dir) {
            for lib in &searched {
                cache.entry(lib).or_default().push([b"?", dir].concat());
            }
        } else {
            for lib in &searched {
                let path = [dir, b"/", lib.as_slice()].concat();
                if accessible(&path, AccessMode::Read) {
                    cache.entry(lib).or_default().push([b"=".as_slice(), &path].concat());
                }
            }
        }
    }
    if cache.is_empty() {
        return Resolution::NoneResolved;
    }
    let mut desc = Vec::new();
    for (lib, items) in cache {
        desc.extend_from_slice(lib);
        desc.push(0);
        desc.extend_from_slice(&items.join(&b':'));
        desc.push(0);
    }
    desc.push(0);
    Resolution::Descriptor(desc)
}

/// Whether the loader must search `dir` itself at run time: what it holds then cannot be known now.
fn needs_search_hint(dir: &[u8]) -> bool {
    if dir.first() != Some(&b'/') || dir.contains(&b'$') {
        return true;
    }
    let path = Path::new(OsStr::from_bytes(dir));
    if !path.is_dir() || !accessible(dir, AccessMode::Search) {
        return true;
    }
    path.join("glibc-hwcaps").exists()
}

#[derive(Clone, Copy)]
enum AccessMode {
    Read,
    Search,
}

/// `access(2)`: whether this process may read the file or search the directory (root's rules included).
fn accessible(path: &[u8], mode: AccessMode) -> bool {
    let Ok(c) = CString::new(path) else { return false };
    let mode = match mode {
        AccessMode::Read => libc::R_OK,
        AccessMode::Search => libc::X_OK,
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; access has no other preconditions.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// The whole note record (header, owner, descriptor), padded to 4 bytes.
pub fn note(fmt: Fmt, desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    fmt.put_u32(&mut out, OWNER.len() as u32 + 1);
    fmt.put_u32(&mut out, desc.len() as u32);
    fmt.put_u32(&mut out, NOTE_TYPE);
    out.extend_from_slice(OWNER);
    out.push(0);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out.extend_from_slice(desc);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_lists_hints_and_hits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libx.so.1"), b"x").unwrap();
        let d = dir.path().to_str().unwrap();
        let hw = dir.path().join("hw");
        std::fs::create_dir_all(hw.join("glibc-hwcaps")).unwrap();
        std::fs::write(hw.join("libx.so.1"), b"x").unwrap();
        let hw = hw.to_str().unwrap();
        let rpath = format!("/does/not/exist:{d}:$ORIGIN/lib:{hw}::rel");
        let needed =
            [b"liby.so.2".to_vec(), b"libx.so.1".to_vec(), b"liby.so.2".to_vec(), b"/abs/libz.so".to_vec()];
        let Resolution::Descriptor(desc) = resolve(&needed, rpath.as_bytes()) else {
            panic!("no descriptor")
        };
        let want = format!(
            "libx.so.1\0?/does/not/exist:={d}/libx.so.1:?$ORIGIN/lib:?{hw}:?:?rel\0\
             liby.so.2\0?/does/not/exist:?$ORIGIN/lib:?{hw}:?:?rel\0\0"
        );
        assert_eq!(String::from_utf8_lossy(&desc), want);
        assert_eq!(resolve(&[b"liby.so.2".to_vec()], d.as_bytes()), Resolution::NoneResolved);
        assert_eq!(resolve(&[b"liby.so.2".to_vec()], b""), Resolution::NothingToResolve);
        assert_eq!(resolve(&[], d.as_bytes()), Resolution::NothingToResolve);
        let n = note(Fmt { is64: true, big: false }, &desc);
        assert_eq!(n.len() % 4, 0);
        assert_eq!(&n[12..17], b"NixOS");
    }
}
