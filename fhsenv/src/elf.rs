//! Just enough ELF reading for the builder: class, machine and `DT_SONAME` of a library, from a few reads.
//!
//! The builder sorts thousands of files by ELF class and keys the `ld.so.cache` by soname, so this reads only the
//! header, the program headers and the dynamic segment instead of parsing whole files.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `EM_386`.
pub const EM_386: u16 = 3;

/// ELF word size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// ELFCLASS32.
    Elf32,
    /// ELFCLASS64.
    Elf64,
}

/// What the builder needs to know about an ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// Word size.
    pub class: Class,
    /// `e_machine`.
    pub machine: u16,
    /// `e_type` is `ET_DYN`.
    pub shared: bool,
    /// `DT_SONAME`, if the file has one.
    pub soname: Option<String>,
    /// `DT_NEEDED` entries.
    pub needed: Vec<String>,
}

/// Reads only the class from the first five bytes; `None` for anything that is not ELF.
pub fn peek_class(path: &Path) -> Option<Class> {
    let file = File::open(path).ok()?;
    let mut ident = [0u8; 5];
    file.read_exact_at(&mut ident, 0).ok()?;
    class_of(&ident)
}

fn class_of(ident: &[u8]) -> Option<Class> {
    if ident.len() < 5 || &ident[..4] != b"\x7fELF" {
        return None;
    }
    match ident[4] {
        1 => Some(Class::Elf32),
        2 => Some(Class::Elf64),
        _ => None,
    }
}

/// Reads class, machine, type and soname of a little-endian ELF file; `None` when it is not one or is truncated.
pub fn inspect(path: &Path) -> Option<ElfInfo> {
    let file = File::open(path).ok()?;
    inspect_file(&file)
}

struct Reader<'a> {
    file: &'a File,
    class: Class,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, offset: u64) -> Option<[u8; N]> {
        let mut buf = [0u8; N];
        self.file.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }
    fn u16(&self, offset: u64) -> Option<u16> {
        self.bytes::<2>(offset).map(u16::from_le_bytes)
    }
    fn u32(&self, offset: u64) -> Option<u32> {
        self.bytes::<4>(offset).map(u32::from_le_bytes)
    }
    /// A word of the file's class (`Elf32_Addr`/`Off` or `Elf64_Addr`/`Off`).
    fn word(&self, offset: u64) -> Option<u64> {
        match self.class {
            Class::Elf32 => self.u32(offset).map(u64::from),
            Class::Elf64 => self.bytes::<8>(offset).map(u64::from_le_bytes),
        }
    }
}

fn inspect_file(file: &File) -> Option<ElfInfo> {
    let mut ident = [0u8; 16];
    file.read_exact_at(&mut ident, 0).ok()?;
    let class = class_of(&ident)?;
    if ident[5] != 1 {
        return None; // only little-endian targets (x86, x86-64) are placed in an FHS env
    }
    let r = Reader { file, class };
    let e_type = r.u16(16)?;
    let machine = r.u16(18)?;
    let (phoff, phentsize, phnum) = match class {
        Class::Elf32 => (r.word(28)?, r.u16(42)?, r.u16(44)?),
        Class::Elf64 => (r.word(32)?, r.u16(54)?, r.u16(56)?),
    };
    let mut loads = Vec::new();
    let mut dynamic = None;
    for i in 0..u64::from(phnum.min(256)) {
        let ph = phoff + i * u64::from(phentsize);
        let p_type = r.u32(ph)?;
        // (offset, vaddr, filesz)
        let seg = match class {
            Class::Elf32 => (r.word(ph + 4)?, r.word(ph + 8)?, r.word(ph + 16)?),
            Class::Elf64 => (r.word(ph + 8)?, r.word(ph + 16)?, r.word(ph + 32)?),
        };
        match p_type {
            1 => loads.push(seg),
            2 => dynamic = Some(seg),
            _ => {}
        }
    }
    let (soname, needed) =
        dynamic.and_then(|(off, _, size)| read_dynamic(&r, off, size, &loads)).unwrap_or_default();
    Some(ElfInfo { class, machine, shared: e_type == 3, soname, needed })
}

fn read_dynamic(
    r: &Reader<'_>,
    off: u64,
    size: u64,
    loads: &[(u64, u64, u64)],
) -> Option<(Option<String>, Vec<String>)> {
    let entsize = match r.class {
        Class::Elf32 => 8,
        Class::Elf64 => 16,
    };
    let (mut strtab, mut soname, mut needed) = (None, None, Vec::new());
    for i in 0..(size / entsize).min(4096) {
        let tag = r.word(off + i * entsize)?;
        let val = r.word(off + i * entsize + entsize / 2)?;
        match tag {
            0 => break,
            1 => needed.push(val),
            5 => strtab = Some(val),
            14 => soname = Some(val),
            _ => {}
        }
    }
    let strtab = vaddr_to_offset(strtab?, loads)?;
    let soname = soname.and_then(|o| read_string(r, strtab + o));
    let needed = needed.into_iter().filter_map(|o| read_string(r, strtab + o)).collect();
    Some((soname, needed))
}

fn read_string(r: &Reader<'_>, start: u64) -> Option<String> {
    let mut name = Vec::new();
    let mut chunk = [0u8; 64];
    while name.len() < 4096 {
        let n = r.file.read_at(&mut chunk, start + name.len() as u64).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            name.extend_from_slice(&chunk[..end]);
            return String::from_utf8(name).ok();
        }
        name.extend_from_slice(&chunk[..n]);
    }
    None
}

fn vaddr_to_offset(vaddr: u64, loads: &[(u64, u64, u64)]) -> Option<u64> {
    loads.iter().find(|(_, va, size)| vaddr >= *va && vaddr < va + size).map(|(off, va, _)| vaddr - va + off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_host_libc() {
        let libc = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
        if !libc.exists() {
            return;
        }
        let info = inspect(libc).unwrap();
        assert_eq!(info.class, Class::Elf64);
        assert_eq!(info.machine, EM_X86_64);
        assert!(info.shared);
        assert_eq!(info.soname.as_deref(), Some("libc.so.6"));
        assert!(info.needed.iter().any(|n| n == "ld-linux-x86-64.so.2"), "{:?}", info.needed);
        assert_eq!(peek_class(libc), Some(Class::Elf64));
    }

    #[test]
    fn non_elf_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"#!/bin/sh\n").unwrap();
        assert_eq!(peek_class(&f), None);
        assert_eq!(inspect(&f), None);
    }
}
