//! The parsed view of one ELF file: header, program headers and the dynamic segment, read lazily from a byte slice
//! (normally a memory map).
//!
//! Everything is found through segments (`PT_DYNAMIC`, `PT_INTERP`, `DT_*` addresses mapped through `PT_LOAD`), so
//! files without section headers work; section headers are read when an edit must keep them consistent, and to
//! find `.dynamic` in a file without `PT_DYNAMIC`. `edit.rs` reads through this view; `layout/` writes the changes.

use crate::error::{Error, Malformed, Result};
use crate::raw::*;

/// Header fields this crate uses.
#[derive(Debug, Clone, Copy)]
pub struct Ehdr {
    pub osabi: u8,
    pub e_type: u16,
    pub e_machine: u16,
    pub e_phoff: u64,
    pub e_shoff: u64,
    pub e_phentsize: u16,
    pub e_phnum: u16,
    pub e_shentsize: u16,
    pub e_shnum: u16,
    pub e_shstrndx: u16,
}

/// Offsets of header fields that edits patch, per class.
impl Ehdr {
    pub const OSABI_OFFSET: u64 = 7;
    pub fn phoff_offset(fmt: Fmt) -> u64 {
        if fmt.is64 { 32 } else { 28 }
    }
    pub fn phnum_offset(fmt: Fmt) -> u64 {
        if fmt.is64 { 56 } else { 44 }
    }
}

#[derive(Debug, Clone)]
pub struct Dynamic {
    /// Index of the `PT_DYNAMIC` program header; `None` when only a `.dynamic` section header locates the table
    /// (a file without `PT_DYNAMIC`, which patchelf, being section-based, still edits).
    pub phdr_index: Option<usize>,
    /// File offset, address and size in bytes of the table.
    pub offset: u64,
    pub vaddr: u64,
    pub size: u64,
    /// Entries before the first `DT_NULL`.
    pub entries: Vec<Dyn>,
    /// How many entries the table has room for (including the terminator).
    pub capacity: u64,
    /// Whether a `DT_NULL` ends the entries within the table.
    pub terminated: bool,
}

#[derive(Debug)]
pub struct Elf<'a> {
    pub data: &'a [u8],
    pub fmt: Fmt,
    pub ehdr: Ehdr,
    pub phdrs: Vec<Phdr>,
    pub dynamic: Option<Dynamic>,
}

/// Upper bound on `.dynamic` entries read: real files have well under a thousand; this keeps absurd sizes cheap.
const MAX_DYN_ENTRIES: u64 = 1 << 20;

impl<'a> Elf<'a> {
    /// Parses the header, the program headers and the dynamic segment, touching nothing else.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, Malformed> {
        // Like patchelf, anything shorter than the smallest (32-bit) header is refused before the magic is looked at.
        let ident = slice(data, 0, 52, "missing ELF header")?;
        if &ident[0..4] != b"\x7fELF" {
            return Err(Malformed::Invalid("not an ELF executable"));
        }
        let is64 = match ident[4] {
            1 => false,
            2 => true,
            _ => return Err(Malformed::Invalid("ELF executable is not 32 or 64 bit")),
        };
        let big = match ident[5] {
            1 => false,
            2 => true,
            _ => return Err(Malformed::Invalid("ELF executable has an unknown byte order")),
        };
        if ident[6] != 1 {
            return Err(Malformed::Invalid("unsupported ELF version"));
        }
        let fmt = Fmt { is64, big };
        // patchelf's wording for any file shorter than the header.
        const H: &str = "missing ELF header";
        slice(data, 0, fmt.ehdr_size(), H)?;
        let w = fmt.word_size();
        let ehdr = Ehdr {
            osabi: ident[7],
            e_type: fmt.u16(data, 16, H)?,
            e_machine: fmt.u16(data, 18, H)?,
            e_phoff: fmt.word(data, 24 + w, H)?,
            e_shoff: fmt.word(data, 24 + 2 * w, H)?,
            e_phentsize: fmt.u16(data, 24 + 3 * w + 6, H)?,
            e_phnum: fmt.u16(data, 24 + 3 * w + 8, H)?,
            e_shentsize: fmt.u16(data, 24 + 3 * w + 10, H)?,
            e_shnum: fmt.u16(data, 24 + 3 * w + 12, H)?,
            e_shstrndx: fmt.u16(data, 24 + 3 * w + 14, H)?,
        };
        if ehdr.e_phnum > 0 && u64::from(ehdr.e_phentsize) != fmt.phdr_size() {
            return Err(Malformed::Invalid("program header entry size is wrong"));
        }
        let pht_len = u64::from(ehdr.e_phnum) * fmt.phdr_size();
        slice(data, ehdr.e_phoff, pht_len, "program header table out of bounds")?;
        let phdrs = (0..u64::from(ehdr.e_phnum))
            .map(|i| Phdr::read(fmt, data, ehdr.e_phoff + i * fmt.phdr_size()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut elf = Elf { data, fmt, ehdr, phdrs, dynamic: None };
        elf.dynamic = elf.read_dynamic()?;
        Ok(elf)
    }

    fn read_dynamic(&self) -> Result<Option<Dynamic>, Malformed> {
        let phdr_index = self.phdrs.iter().position(|p| p.p_type == PT_DYNAMIC);
        let (offset, vaddr, size) = match phdr_index {
            Some(i) => (self.phdrs[i].p_offset, self.phdrs[i].p_vaddr, self.phdrs[i].p_filesz),
            // No PT_DYNAMIC: a `.dynamic` section inside a LOAD still says where the table is. Static files have
            // neither, and broken section headers just leave the file without one.
            None => match self.sections().ok().and_then(|s| s.into_iter().find(|s| s.sh_type == SHT_DYNAMIC))
            {
                Some(s) if self.vaddr_to_offset(s.sh_addr, s.sh_size, "").ok() == Some(s.sh_offset) => {
                    (s.sh_offset, s.sh_addr, s.sh_size)
                }
                _ => return Ok(None),
            },
        };
        let esz = self.fmt.dyn_size();
        let capacity = size / esz;
        if capacity > MAX_DYN_ENTRIES {
            return Err(Malformed::Invalid("dynamic segment is absurdly large"));
        }
        slice(self.data, offset, capacity * esz, "dynamic section out of bounds")?;
        let mut entries = Vec::new();
        let mut terminated = false;
        for i in 0..capacity {
            let off = offset + i * esz;
            let tag = self.fmt.word(self.data, off, "dynamic section out of bounds")?;
            if tag == DT_NULL {
                terminated = true;
                break;
            }
            let val =
                self.fmt.word(self.data, off + self.fmt.word_size(), "dynamic section out of bounds")?;
            entries.push(Dyn { tag, val });
        }
        Ok(Some(Dynamic { phdr_index, offset, vaddr, size, entries, capacity, terminated }))
    }

    /// patchelf works only on executables and shared objects (`ET_EXEC`, `ET_DYN`): relocatable objects, core
    /// dumps and anything else are refused with its wording, for print options too.
    pub fn check_patchable(&self) -> Result<(), Malformed> {
        match self.ehdr.e_type {
            ET_EXEC | ET_DYN => Ok(()),
            _ => Err(Malformed::Invalid("wrong ELF type")),
        }
    }

    pub fn dynamic(&self) -> Result<&Dynamic> {
        self.dynamic.as_ref().ok_or_else(Error::no_dynamic)
    }

    pub fn dyn_val(&self, tag: u64) -> Option<u64> {
        self.dynamic.as_ref()?.entries.iter().find(|d| d.tag == tag).map(|d| d.val)
    }

    /// The file offset of `len` bytes at virtual address `addr`, which must lie in one `PT_LOAD`'s file image.
    pub fn vaddr_to_offset(&self, addr: u64, len: u64, what: &'static str) -> Result<u64, Malformed> {
        for p in self.phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
            if addr >= p.p_vaddr
                && addr.checked_add(len).is_some_and(|end| end <= p.p_vaddr.saturating_add(p.p_filesz))
            {
                let off = p.p_offset.checked_add(addr - p.p_vaddr).ok_or(Malformed::OutOfBounds(what))?;
                slice(self.data, off, len, what)?;
                return Ok(off);
            }
        }
        Err(Malformed::OutOfBounds(what))
    }

    /// The file range of the dynamic string table (`DT_STRTAB`, `DT_STRSZ`).
    pub fn dynstr_range(&self) -> Result<(u64, u64)> {
        self.dynamic()?;
        let addr = self.dyn_val(DT_STRTAB).ok_or(Malformed::Invalid("no DT_STRTAB in dynamic section"))?;
        let size = self.dyn_val(DT_STRSZ).ok_or(Malformed::Invalid("no DT_STRSZ in dynamic section"))?;
        let off = self.vaddr_to_offset(addr, size, "string table out of bounds")?;
        Ok((off, size))
    }

    /// The dynamic string table; like patchelf, one whose last byte is not a NUL is refused.
    pub fn dynstr(&self) -> Result<&'a [u8]> {
        let (off, size) = self.dynstr_range()?;
        let table = slice(self.data, off, size, "string table out of bounds")?;
        if table.last() != Some(&0) {
            return Err(Malformed::Invalid("string table is not NUL-terminated").into());
        }
        Ok(table)
    }

    /// The interpreter path (without its NUL) from `PT_INTERP`.
    pub fn interp(&self) -> Result<&'a [u8]> {
        let p = self.phdrs.iter().find(|p| p.p_type == PT_INTERP).ok_or_else(Error::no_interp)?;
        let bytes = slice(self.data, p.p_offset, p.p_filesz, "interpreter out of bounds")?;
        Ok(until_nul(bytes))
    }

    /// Section headers, or none when the file has none (`e_shnum == 0`).
    pub fn sections(&self) -> Result<Vec<Shdr>, Malformed> {
        if self.ehdr.e_shnum == 0 || self.ehdr.e_shoff == 0 {
            return Ok(Vec::new());
        }
        if u64::from(self.ehdr.e_shentsize) != self.fmt.shdr_size() {
            return Err(Malformed::Invalid("section headers have wrong size"));
        }
        let n = u64::from(self.ehdr.e_shnum);
        slice(self.data, self.ehdr.e_shoff, n * self.fmt.shdr_size(), "section header table out of bounds")?;
        (0..n)
            .map(|i| Shdr::read(self.fmt, self.data, self.ehdr.e_shoff + i * self.fmt.shdr_size()))
            .collect()
    }

    /// The checks patchelf makes of section headers before it edits a file, with its wording: the name table is
    /// in the file, non-empty and NUL-terminated, every name lies in it, and `.dynamic` is in the file and
    /// aligned. A rewrite keeps section headers consistent, so it refuses headers that do not pass.
    pub fn check_sections(&self, shdrs: &[Shdr]) -> Result<(), Malformed> {
        if shdrs.is_empty() {
            return Ok(());
        }
        let names = shdrs
            .get(usize::from(self.ehdr.e_shstrndx))
            .ok_or(Malformed::OutOfBounds("string table index out of bounds"))?;
        if names.sh_offset > self.data.len() as u64 {
            return Err(Malformed::OutOfBounds("string table offset out of bounds"));
        }
        let table = slice(self.data, names.sh_offset, names.sh_size, "data region extends past file end")?;
        match table.last() {
            None => return Err(Malformed::Invalid("string table size is zero")),
            Some(&b) if b != 0 => return Err(Malformed::Invalid("string table is not zero terminated")),
            _ => {}
        }
        if shdrs[1..].iter().any(|s| u64::from(s.sh_name) >= names.sh_size) {
            return Err(Malformed::OutOfBounds("section name offset out of bounds"));
        }
        for s in shdrs.iter().filter(|s| s.sh_type == SHT_DYNAMIC) {
            slice(self.data, s.sh_offset, s.sh_size, "data offset extends past file end")?;
            if s.sh_offset % self.fmt.word_size() != 0 {
                return Err(Malformed::Invalid("section content is not naturally aligned"));
            }
        }
        // A section claiming bytes beyond the end is damage a rewrite would carry along (and could make look
        // different as the file grows).
        if shdrs
            .iter()
            .any(|s| s.has_file_bytes() && s.sh_offset.saturating_add(s.sh_size) > self.data.len() as u64)
        {
            return Err(Malformed::OutOfBounds("a section extends past the end of the file"));
        }
        Ok(())
    }

    /// Name of a section from the section-name string table; empty when unavailable.
    pub fn section_name<'s>(&self, shdrs: &'s [Shdr], sh: &Shdr) -> &'a [u8] {
        let Some(strtab) = shdrs.get(usize::from(self.ehdr.e_shstrndx)) else { return b"" };
        let Ok(table) = slice(self.data, strtab.sh_offset, strtab.sh_size, "") else { return b"" };
        table.get(sh.sh_name as usize..).map(until_nul).unwrap_or(b"")
    }

    /// Entry size of `.hash` words: 8 on 64-bit s390 and Alpha, 4 elsewhere.
    pub fn hash_entry_size(&self) -> u64 {
        if (self.ehdr.e_machine == EM_S390 && self.fmt.is64) || self.ehdr.e_machine == EM_ALPHA {
            8
        } else {
            4
        }
    }

    /// Number of `.dynsym` entries: `DT_HASH`'s chain count, else the `.dynsym` section header, else what
    /// `DT_GNU_HASH` tells. A `.gnu.hash` that hashes no symbol (a program exporting nothing) only bounds the
    /// count from below; then the table is taken to end where `.dynstr` starts, the linkers' layout.
    pub fn dynsym_count(&self) -> Result<u64> {
        if let Some(addr) = self.dyn_val(DT_HASH) {
            let es = self.hash_entry_size();
            let off = self.vaddr_to_offset(addr, 2 * es, "hash table header out of range")?;
            let nchain = if es == 8 {
                self.fmt.u64(self.data, off + 8, "hash table header out of range")?
            } else {
                self.fmt.u32(self.data, off + 4, "hash table header out of range")?.into()
            };
            return Ok(nchain);
        }
        let symtab = self.dyn_val(DT_SYMTAB).ok_or(Malformed::Invalid("no DT_SYMTAB in dynamic section"))?;
        let sz = self.fmt.sym_size();
        // Section headers are optional here: broken ones just leave the dynamic segment to answer.
        if let Ok(shdrs) = self.sections()
            && let Some(s) =
                shdrs.iter().find(|s| s.sh_type == SHT_DYNSYM && s.sh_addr == symtab && s.sh_size > 0)
        {
            return Ok(s.sh_size / sz);
        }
        let Some(addr) = self.dyn_val(DT_GNU_HASH) else {
            return Err(Error::Unsupported("cannot determine the number of dynamic symbols".into()));
        };
        let (count, exact) = self.gnu_hash_symbol_count(addr)?;
        if exact {
            return Ok(count);
        }
        match self.dyn_val(DT_STRTAB) {
            Some(strtab)
                if strtab > symtab && (strtab - symtab) % sz == 0 && (strtab - symtab) / sz >= count =>
            {
                Ok((strtab - symtab) / sz)
            }
            _ => Ok(count),
        }
    }

    /// The symbol count `.gnu.hash` implies, and whether it is exact (false when no symbol is hashed: then it is
    /// only the index of the first hashed symbol).
    fn gnu_hash_symbol_count(&self, addr: u64) -> Result<(u64, bool)> {
        const W: &str = ".gnu.hash table header out of range";
        let off = self.vaddr_to_offset(addr, 16, W)?;
        let nbuckets = u64::from(self.fmt.u32(self.data, off, W)?);
        let symoffset = u64::from(self.fmt.u32(self.data, off + 4, W)?);
        let bloom_size = u64::from(self.fmt.u32(self.data, off + 8, W)?);
        let buckets = off + 16 + bloom_size * self.fmt.word_size();
        slice(self.data, buckets, nbuckets * 4, W)?;
        let mut last = 0u64;
        for i in 0..nbuckets {
            last = last.max(u64::from(self.fmt.u32(self.data, buckets + 4 * i, W)?));
        }
        if last < symoffset {
            return Ok((symoffset, false));
        }
        let chains = buckets + nbuckets * 4;
        loop {
            let v = self.fmt.u32(self.data, chains + 4 * (last - symoffset), W)?;
            if v & 1 != 0 {
                return Ok((last + 1, true));
            }
            last += 1;
        }
    }
}

pub fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

/// The string at `off` in a string table (up to its NUL), bounds-checked.
pub fn str_at(table: &[u8], off: u64) -> Result<&[u8], Malformed> {
    let start =
        usize::try_from(off).map_err(|_| Malformed::OutOfBounds("string table index out of bounds"))?;
    let rest = table.get(start..).ok_or(Malformed::OutOfBounds("string table index out of bounds"))?;
    match rest.iter().position(|&b| b == 0) {
        Some(n) => Ok(&rest[..n]),
        None => Err(Malformed::OutOfBounds("string table index out of bounds")),
    }
}

/// patchelf's default page size per machine (`--page-size` overrides it).
pub fn default_page_size(machine: u16) -> u64 {
    match machine {
        EM_ALPHA | EM_IA_64 | EM_MIPS | EM_PPC | EM_PPC64 | EM_AARCH64 | EM_TILEGX | EM_LOONGARCH => 0x10000,
        EM_SPARC | EM_SPARCV9 => 0x2000,
        _ => 0x1000,
    }
}
