//! Raw ELF records and the endian/class-generic codec that reads and writes them.
//!
//! Every read is bounds-checked and returns [`Malformed`] instead of slicing out of range; writes go into buffers
//! this crate sized itself. `elf.rs` builds the parsed view on top of these records, `layout.rs` encodes them back.

use crate::error::Malformed;

pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_NOTE: u32 = 4;
pub const PT_PHDR: u32 = 6;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PT_GNU_PROPERTY: u32 = 0x6474_e553;

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;

pub const SHT_NOBITS: u32 = 8;
pub const SHT_DYNAMIC: u32 = 6;
pub const SHT_NOTE: u32 = 7;
pub const SHT_SYMTAB: u32 = 2;
pub const SHT_STRTAB: u32 = 3;
pub const SHT_DYNSYM: u32 = 11;
pub const SHF_ALLOC: u64 = 2;

pub const DT_NULL: u64 = 0;
pub const DT_NEEDED: u64 = 1;
pub const DT_HASH: u64 = 4;
pub const DT_STRTAB: u64 = 5;
pub const DT_SYMTAB: u64 = 6;
pub const DT_STRSZ: u64 = 10;
pub const DT_SYMENT: u64 = 11;
pub const DT_SONAME: u64 = 14;
pub const DT_RPATH: u64 = 15;
pub const DT_DEBUG: u64 = 21;
pub const DT_PLTRELSZ: u64 = 2;
pub const DT_RELA: u64 = 7;
pub const DT_RELASZ: u64 = 8;
pub const DT_RELAENT: u64 = 9;
pub const DT_REL: u64 = 17;
pub const DT_RELSZ: u64 = 18;
pub const DT_RELENT: u64 = 19;
pub const DT_PLTREL: u64 = 20;
pub const DT_JMPREL: u64 = 23;
pub const DT_RUNPATH: u64 = 29;
pub const DT_GNU_HASH: u64 = 0x6fff_fef5;
pub const DT_VERSYM: u64 = 0x6fff_fff0;
pub const DT_FLAGS_1: u64 = 0x6fff_fffb;
pub const DT_VERDEF: u64 = 0x6fff_fffc;
pub const DT_VERDEFNUM: u64 = 0x6fff_fffd;
pub const DT_VERNEED: u64 = 0x6fff_fffe;
pub const DT_VERNEEDNUM: u64 = 0x6fff_ffff;
pub const DT_AUXILIARY: u64 = 0x7fff_fffd;
pub const DT_FILTER: u64 = 0x7fff_ffff;
pub const DT_MIPS_RLD_MAP_REL: u64 = 0x7000_0035;
pub const DF_1_NODEFLIB: u64 = 0x800;

pub const EM_386: u16 = 3;
pub const EM_SPARC: u16 = 2;
pub const EM_MIPS: u16 = 8;
pub const EM_PPC: u16 = 20;
pub const EM_PPC64: u16 = 21;
pub const EM_S390: u16 = 22;
pub const EM_SPARCV9: u16 = 43;
pub const EM_IA_64: u16 = 50;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_TILEGX: u16 = 191;
pub const EM_LOONGARCH: u16 = 258;
pub const EM_ALPHA: u16 = 0x9026;

/// Class (32/64-bit) and byte order of one file: the two things every field access depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fmt {
    pub is64: bool,
    pub big: bool,
}

/// Bounds-checked slice of `len` bytes at `off`.
pub fn slice<'d>(data: &'d [u8], off: u64, len: u64, what: &'static str) -> Result<&'d [u8], Malformed> {
    let start = usize::try_from(off).map_err(|_| Malformed::OutOfBounds(what))?;
    let len = usize::try_from(len).map_err(|_| Malformed::OutOfBounds(what))?;
    let end = start.checked_add(len).ok_or(Malformed::OutOfBounds(what))?;
    data.get(start..end).ok_or(Malformed::OutOfBounds(what))
}

impl Fmt {
    /// Size of an address/offset word (`Elf_Addr`, `Elf_Off`, `Elf_Xword` in 64-bit).
    pub fn word_size(self) -> u64 {
        if self.is64 { 8 } else { 4 }
    }
    pub fn ehdr_size(self) -> u64 {
        if self.is64 { 64 } else { 52 }
    }
    pub fn phdr_size(self) -> u64 {
        if self.is64 { 56 } else { 32 }
    }
    pub fn shdr_size(self) -> u64 {
        if self.is64 { 64 } else { 40 }
    }
    pub fn dyn_size(self) -> u64 {
        2 * self.word_size()
    }
    pub fn sym_size(self) -> u64 {
        if self.is64 { 24 } else { 16 }
    }

    pub fn u16(self, data: &[u8], off: u64, what: &'static str) -> Result<u16, Malformed> {
        let b: [u8; 2] = slice(data, off, 2, what)?.try_into().map_err(|_| Malformed::OutOfBounds(what))?;
        Ok(if self.big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }
    pub fn u32(self, data: &[u8], off: u64, what: &'static str) -> Result<u32, Malformed> {
        let b: [u8; 4] = slice(data, off, 4, what)?.try_into().map_err(|_| Malformed::OutOfBounds(what))?;
        Ok(if self.big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }
    pub fn u64(self, data: &[u8], off: u64, what: &'static str) -> Result<u64, Malformed> {
        let b: [u8; 8] = slice(data, off, 8, what)?.try_into().map_err(|_| Malformed::OutOfBounds(what))?;
        Ok(if self.big { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) })
    }
    /// A class-sized word, widened to u64.
    pub fn word(self, data: &[u8], off: u64, what: &'static str) -> Result<u64, Malformed> {
        if self.is64 { self.u64(data, off, what) } else { self.u32(data, off, what).map(u64::from) }
    }

    pub fn put_u16(self, out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    pub fn put_u32(self, out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    pub fn put_u64(self, out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    /// Writes a class-sized word; 32-bit files keep the low half (values there never exceed it by construction).
    pub fn put_word(self, out: &mut Vec<u8>, v: u64) {
        if self.is64 { self.put_u64(out, v) } else { self.put_u32(out, v as u32) }
    }
    pub fn u32_bytes(self, v: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(4);
        self.put_u32(&mut out, v);
        out
    }
    pub fn u16_bytes(self, v: u16) -> Vec<u8> {
        let mut out = Vec::with_capacity(2);
        self.put_u16(&mut out, v);
        out
    }
    pub fn word_bytes(self, v: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(8);
        self.put_word(&mut out, v);
        out
    }
}

/// One program header, fields widened to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl Phdr {
    pub fn read(fmt: Fmt, data: &[u8], off: u64) -> Result<Phdr, Malformed> {
        const W: &str = "program header table out of bounds";
        if fmt.is64 {
            Ok(Phdr {
                p_type: fmt.u32(data, off, W)?,
                p_flags: fmt.u32(data, off + 4, W)?,
                p_offset: fmt.u64(data, off + 8, W)?,
                p_vaddr: fmt.u64(data, off + 16, W)?,
                p_paddr: fmt.u64(data, off + 24, W)?,
                p_filesz: fmt.u64(data, off + 32, W)?,
                p_memsz: fmt.u64(data, off + 40, W)?,
                p_align: fmt.u64(data, off + 48, W)?,
            })
        } else {
            Ok(Phdr {
                p_type: fmt.u32(data, off, W)?,
                p_offset: fmt.u32(data, off + 4, W)?.into(),
                p_vaddr: fmt.u32(data, off + 8, W)?.into(),
                p_paddr: fmt.u32(data, off + 12, W)?.into(),
                p_filesz: fmt.u32(data, off + 16, W)?.into(),
                p_memsz: fmt.u32(data, off + 20, W)?.into(),
                p_flags: fmt.u32(data, off + 24, W)?,
                p_align: fmt.u32(data, off + 28, W)?.into(),
            })
        }
    }

    pub fn encode(&self, fmt: Fmt, out: &mut Vec<u8>) {
        if fmt.is64 {
            fmt.put_u32(out, self.p_type);
            fmt.put_u32(out, self.p_flags);
            fmt.put_u64(out, self.p_offset);
            fmt.put_u64(out, self.p_vaddr);
            fmt.put_u64(out, self.p_paddr);
            fmt.put_u64(out, self.p_filesz);
            fmt.put_u64(out, self.p_memsz);
            fmt.put_u64(out, self.p_align);
        } else {
            for v in
                [self.p_type as u64, self.p_offset, self.p_vaddr, self.p_paddr, self.p_filesz, self.p_memsz]
            {
                fmt.put_u32(out, v as u32);
            }
            fmt.put_u32(out, self.p_flags);
            fmt.put_u32(out, self.p_align as u32);
        }
    }

    /// File range end, saturating so absurd values compare as "far away" instead of wrapping.
    pub fn file_end(&self) -> u64 {
        self.p_offset.saturating_add(self.p_filesz)
    }
    pub fn mem_end(&self) -> u64 {
        self.p_vaddr.saturating_add(self.p_memsz)
    }
}

/// One section header, fields widened to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shdr {
    pub sh_name: u32,
    pub sh_type: u32,
    pub sh_flags: u64,
    pub sh_addr: u64,
    pub sh_offset: u64,
    pub sh_size: u64,
    pub sh_link: u32,
    pub sh_info: u32,
    pub sh_addralign: u64,
    pub sh_entsize: u64,
}

impl Shdr {
    pub fn read(fmt: Fmt, data: &[u8], off: u64) -> Result<Shdr, Malformed> {
        const W: &str = "section header table out of bounds";
        if fmt.is64 {
            Ok(Shdr {
                sh_name: fmt.u32(data, off, W)?,
                sh_type: fmt.u32(data, off + 4, W)?,
                sh_flags: fmt.u64(data, off + 8, W)?,
                sh_addr: fmt.u64(data, off + 16, W)?,
                sh_offset: fmt.u64(data, off + 24, W)?,
                sh_size: fmt.u64(data, off + 32, W)?,
                sh_link: fmt.u32(data, off + 40, W)?,
                sh_info: fmt.u32(data, off + 44, W)?,
                sh_addralign: fmt.u64(data, off + 48, W)?,
                sh_entsize: fmt.u64(data, off + 56, W)?,
            })
        } else {
            Ok(Shdr {
                sh_name: fmt.u32(data, off, W)?,
                sh_type: fmt.u32(data, off + 4, W)?,
                sh_flags: fmt.u32(data, off + 8, W)?.into(),
                sh_addr: fmt.u32(data, off + 12, W)?.into(),
                sh_offset: fmt.u32(data, off + 16, W)?.into(),
                sh_size: fmt.u32(data, off + 20, W)?.into(),
                sh_link: fmt.u32(data, off + 24, W)?,
                sh_info: fmt.u32(data, off + 28, W)?,
                sh_addralign: fmt.u32(data, off + 32, W)?.into(),
                sh_entsize: fmt.u32(data, off + 36, W)?.into(),
            })
        }
    }

    pub fn encode(&self, fmt: Fmt, out: &mut Vec<u8>) {
        fmt.put_u32(out, self.sh_name);
        fmt.put_u32(out, self.sh_type);
        fmt.put_word(out, self.sh_flags);
        fmt.put_word(out, self.sh_addr);
        fmt.put_word(out, self.sh_offset);
        fmt.put_word(out, self.sh_size);
        fmt.put_u32(out, self.sh_link);
        fmt.put_u32(out, self.sh_info);
        fmt.put_word(out, self.sh_addralign);
        fmt.put_word(out, self.sh_entsize);
    }

    /// Whether the section occupies bytes in the file.
    pub fn has_file_bytes(&self) -> bool {
        self.sh_type != SHT_NOBITS && self.sh_size > 0 && self.sh_type != 0
    }
}

/// One `.dynamic` entry; the tag is kept as the unsigned word the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dyn {
    pub tag: u64,
    pub val: u64,
}

impl Dyn {
    pub fn encode(&self, fmt: Fmt, out: &mut Vec<u8>) {
        fmt.put_word(out, self.tag);
        fmt.put_word(out, self.val);
    }
}

pub fn align_up(v: u64, align: u64) -> Option<u64> {
    if align <= 1 {
        return Some(v);
    }
    v.checked_add(align - 1).map(|x| x / align * align)
}
