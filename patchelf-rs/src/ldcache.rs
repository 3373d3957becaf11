//! `--build-resolution-cache`: the `.note.nixos.ldcache` note (owner `NixOS`, type `0x63a86cb6`) that a patched
//! glibc reads to resolve `DT_NEEDED` entries without walking the run path.
//!
//! The descriptor is a sequence of NUL-terminated pairs `soname`, `entries`, closed by one more NUL. `entries` joins
//! with `:` one item per run-path directory, in order: `=dir/soname` where the library exists, `?dir` for a
//! directory whose contents can only be known at run time (missing now, empty, relative, or using `$ORIGIN`-style
//! variables), nothing for an existing directory without it. A library with no item gets no pair. `edit.rs` decides
//! when to build or drop the note; `layout.rs` places it in the new segment with its own `PT_NOTE`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::elf::Elf;
use crate::raw::*;

pub const OWNER: &[u8] = b"NixOS";
pub const NOTE_TYPE: u32 = 0x63a8_6cb6;
pub const SECTION_NAME: &[u8] = b".note.nixos.ldcache";

/// An existing resolution-cache note: the `PT_NOTE` holding it, its file range and descriptor.
#[derive(Debug, Clone)]
pub struct Existing {
    pub phdr_index: usize,
    pub off: u64,
    pub size: u64,
    pub desc: Vec<u8>,
}

/// Finds a resolution-cache note in the file's `PT_NOTE` segments.
pub fn find(elf: &Elf<'_>) -> Option<Existing> {
    let fmt = elf.fmt;
    for (i, p) in elf.phdrs.iter().enumerate().filter(|(_, p)| p.p_type == PT_NOTE) {
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
                return Some(Existing { phdr_index: i, off: at, size: next - at, desc });
            }
            at = next;
        }
    }
    None
}

/// The descriptor for `needed` libraries resolved along `rpath`; `None` when no library gets an entry.
pub fn descriptor(needed: &[Vec<u8>], rpath: &[u8]) -> Option<Vec<u8>> {
    let dirs: Vec<&[u8]> = rpath.split(|&b| b == b':').collect();
    // One pair per library, ordered by name (as patchelf writes it), not in DT_NEEDED order.
    let mut libs: Vec<&Vec<u8>> = needed.iter().collect();
    libs.sort();
    libs.dedup();
    let mut desc = Vec::new();
    for lib in libs {
        let mut items: Vec<Vec<u8>> = Vec::new();
        for dir in &dirs {
            let runtime = dir.is_empty() || dir[0] != b'/' || dir.contains(&b'$');
            let path = Path::new(OsStr::from_bytes(dir));
            if runtime || !path.is_dir() {
                items.push([b"?", *dir].concat());
            } else if path.join(OsStr::from_bytes(lib)).exists() {
                items.push([b"=", *dir, b"/", lib.as_slice()].concat());
            }
        }
        if items.is_empty() {
            continue;
        }
        desc.extend_from_slice(lib);
        desc.push(0);
        desc.extend_from_slice(&items.join(&b':'));
        desc.push(0);
    }
    if desc.is_empty() {
        return None;
    }
    desc.push(0);
    Some(desc)
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
        let dir = std::env::temp_dir().join(format!("patchelf-rs-ldcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libx.so.1"), b"x").unwrap();
        let d = dir.to_str().unwrap();
        let rpath = format!("/does/not/exist:{d}:$ORIGIN/lib");
        let desc = descriptor(
            &[b"liby.so.2".to_vec(), b"libx.so.1".to_vec(), b"liby.so.2".to_vec()],
            rpath.as_bytes(),
        )
        .unwrap();
        let want = format!(
            "libx.so.1\0?/does/not/exist:={d}/libx.so.1:?$ORIGIN/lib\0liby.so.2\0?/does/not/exist:?$ORIGIN/lib\0\0"
        );
        assert_eq!(desc, want.as_bytes());
        assert_eq!(descriptor(&[b"liby.so.2".to_vec()], d.as_bytes()), None);
        let n = note(Fmt { is64: true, big: false }, &desc);
        assert_eq!(n.len() % 4, 0);
        assert_eq!(&n[12..17], b"NixOS");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
