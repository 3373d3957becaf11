//! Checks that a file can serve as the real loader and plans its mapping the way the kernel's `load_elf_binary`
//! maps an interpreter: one reservation spanning every `PT_LOAD`, each segment at `bias + p_vaddr`, the bss part of
//! the last file page zeroed and the rest of the bss mapped anonymously, relative to its own segment.
//!
//! Pure: header bytes in, a [`Plan`] or a [`LoadError`] out; the binary performs the syscalls. Also recognises the
//! shim itself by its ELF note, so that neither the shim nor `fhskit shim install` mistakes it for a real loader.

/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_INTERP`.
pub const PT_INTERP: u32 = 3;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = 4;
/// `PT_PHDR`.
pub const PT_PHDR: u32 = 6;
/// `PF_X`, `PF_W`, `PF_R`.
pub const PF_X: u32 = 1;
/// Writable segment.
pub const PF_W: u32 = 2;
/// Readable segment.
pub const PF_R: u32 = 4;

/// The shim's note: name `fhskit`, this type, descriptor `ld-shim`. The binary emits it; [`is_shim`] finds it.
pub const SHIM_NOTE_NAME: &[u8] = b"fhskit\0";
/// The type of the shim's note (`LDSH`).
pub const SHIM_NOTE_TYPE: u32 = 0x4853_444c;
/// The descriptor of the shim's note.
pub const SHIM_NOTE_DESC: &[u8] = b"ld-shim\0";

/// At most this many `PT_LOAD` segments (glibc's ld.so has four or five).
pub const MAX_SEGMENTS: usize = 16;
/// At most this many `PT_NOTE` segments are checked for the shim's note.
pub const MAX_NOTES: usize = 4;

const ET_DYN: u16 = 3;
const ELFDATA2LSB: u8 = 1;

#[cfg(target_pointer_width = "64")]
const NATIVE_CLASS: u8 = 2;
#[cfg(target_pointer_width = "32")]
const NATIVE_CLASS: u8 = 1;

/// Why a file cannot be the loader. [`LoadError::reason`] is the text after `cannot load <path>: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// No ELF magic.
    NotElf,
    /// 32-bit loader for a 64-bit shim or the reverse.
    WrongClass,
    /// Big-endian file.
    WrongByteOrder,
    /// Another architecture.
    WrongMachine,
    /// Not `ET_DYN`.
    NotSharedObject,
    /// Program header entries of the wrong size, or none.
    BadProgramHeaders,
    /// The program header table does not fit the bytes read.
    HeadersTooLarge,
    /// No `PT_LOAD` with contents.
    NoSegments,
    /// More than [`MAX_SEGMENTS`] `PT_LOAD`s.
    TooManySegments,
    /// A segment whose file offset and address differ modulo the page size, or out of order.
    MisalignedSegment,
    /// A segment extends past the end of the file, or the header itself is cut short.
    Truncated,
    /// The file is ld-shim itself (it would load itself forever).
    IsShim,
    /// The entry point lies outside the executable segments (a library that is not a loader, such as most
    /// `lib*.so` files).
    BadEntry,
    /// The file names an interpreter (`PT_INTERP`): a program or a library that is also a program, such as
    /// glibc's `libc.so.6`, not a loader (which must be self-contained).
    HasInterpreter,
}

impl LoadError {
    /// A lowercase description for the one-line error message.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotElf => "not an ELF file",
            #[cfg(target_pointer_width = "64")]
            Self::WrongClass => "wrong ELF class (a 32-bit file; this shim is 64-bit)",
            #[cfg(target_pointer_width = "32")]
            Self::WrongClass => "wrong ELF class (a 64-bit file; this shim is 32-bit)",
            Self::WrongByteOrder => "wrong byte order (big-endian)",
            Self::WrongMachine => "wrong machine (built for another architecture)",
            Self::NotSharedObject => "not a dynamic loader (ELF type is not ET_DYN)",
            Self::BadProgramHeaders => "malformed program headers",
            Self::HeadersTooLarge => "program header table too large",
            Self::NoSegments => "no loadable segments",
            Self::TooManySegments => "too many loadable segments",
            Self::MisalignedSegment => "misaligned or unordered loadable segment",
            Self::Truncated => "file is truncated",
            Self::IsShim => "it is ld-shim itself, not the real loader",
            Self::BadEntry => "no entry point in an executable segment (a library, not a dynamic loader)",
            Self::HasInterpreter => "it is a program with an interpreter of its own, not a dynamic loader",
        }
    }
}

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// `p_vaddr`.
    pub vaddr: usize,
    /// `p_memsz`.
    pub memsz: usize,
    /// `p_offset`.
    pub offset: usize,
    /// `p_filesz`.
    pub filesz: usize,
    /// `p_flags` (`PF_R`, `PF_W`, `PF_X`).
    pub flags: u32,
}

/// How to map a checked loader.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
    /// Page-aligned lowest address of the segments (before the load bias).
    pub first: usize,
    /// Page-aligned length of the span from `first` to the end of the last segment.
    pub span: usize,
    /// The largest `p_align` of the segments, at least the page size.
    pub align: usize,
    /// `e_entry` (before the load bias).
    pub entry: usize,
    notes: [(usize, usize); MAX_NOTES],
    note_count: usize,
}

impl Plan {
    /// The `PT_LOAD` segments with contents, in address order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// `(p_offset, p_filesz)` of the `PT_NOTE` segments.
    pub fn notes(&self) -> &[(usize, usize)] {
        &self.notes[..self.note_count]
    }
}

/// Field access for either ELF class.
struct Header<'a> {
    bytes: &'a [u8],
    wide: bool,
}

impl<'a> Header<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, LoadError> {
        if bytes.len() < 4 || bytes[..4] != *b"\x7fELF" {
            return Err(LoadError::NotElf);
        }
        if bytes.len() < 20 {
            return Err(LoadError::Truncated);
        }
        let wide = match bytes[4] {
            1 => false,
            2 => true,
            _ => return Err(LoadError::NotElf),
        };
        if bytes[5] != ELFDATA2LSB {
            return Err(LoadError::WrongByteOrder);
        }
        let header = Self { bytes, wide };
        if bytes.len() < header.ehdr_size() {
            return Err(LoadError::Truncated);
        }
        Ok(header)
    }

    fn ehdr_size(&self) -> usize {
        if self.wide { 64 } else { 52 }
    }

    fn phdr_size(&self) -> usize {
        if self.wide { 56 } else { 32 }
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = &self.bytes[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// A word-sized field as u64 (4 bytes in 32-bit files, 8 in 64-bit ones).
    fn word_at(&self, at: usize) -> u64 {
        if self.wide {
            let b = &self.bytes[at..at + 8];
            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        } else {
            u64::from(self.u32_at(at))
        }
    }

    fn machine(&self) -> u16 {
        self.u16_at(18)
    }

    fn kind(&self) -> u16 {
        self.u16_at(16)
    }

    fn entry(&self) -> u64 {
        self.word_at(24)
    }

    /// `(e_phoff, e_phentsize, e_phnum)`.
    fn program_header_table(&self) -> (u64, u16, u16) {
        if self.wide {
            (self.word_at(32), self.u16_at(54), self.u16_at(56))
        } else {
            (self.word_at(28), self.u16_at(42), self.u16_at(44))
        }
    }

    /// Iterates over the program headers that lie within the bytes.
    fn program_headers(&self) -> Result<impl Iterator<Item = ProgramHeader> + '_, LoadError> {
        let (offset, entry_size, count) = self.program_header_table();
        if usize::from(entry_size) != self.phdr_size() || count == 0 {
            return Err(LoadError::BadProgramHeaders);
        }
        let start = usize::try_from(offset).map_err(|_| LoadError::HeadersTooLarge)?;
        let end = start
            .checked_add(usize::from(count) * self.phdr_size())
            .filter(|&end| end <= self.bytes.len())
            .ok_or(LoadError::HeadersTooLarge)?;
        let size = self.phdr_size();
        Ok((start..end).step_by(size).map(move |at| self.program_header(at)))
    }

    fn program_header(&self, at: usize) -> ProgramHeader {
        if self.wide {
            ProgramHeader {
                kind: self.u32_at(at),
                flags: self.u32_at(at + 4),
                offset: self.word_at(at + 8),
                vaddr: self.word_at(at + 16),
                filesz: self.word_at(at + 32),
                memsz: self.word_at(at + 40),
                align: self.word_at(at + 48),
            }
        } else {
            ProgramHeader {
                kind: self.u32_at(at),
                offset: self.word_at(at + 4),
                vaddr: self.word_at(at + 8),
                filesz: self.word_at(at + 16),
                memsz: self.word_at(at + 20),
                flags: self.u32_at(at + 24),
                align: self.word_at(at + 28),
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

/// Rounds down to a multiple of `page` (a power of two).
pub fn page_down(value: usize, page: usize) -> usize {
    value & !(page - 1)
}

/// Rounds up to a multiple of `page` (a power of two); `None` on overflow.
pub fn page_up(value: usize, page: usize) -> Option<usize> {
    Some(value.checked_add(page - 1)? & !(page - 1))
}

/// Checks the first bytes of a would-be loader (`header` must hold the ELF header and the program header table)
/// for this shim's class and `machine`, and plans its mapping. `file_size` bounds the segments; `page` is the page
/// size (`AT_PAGESZ`).
pub fn plan(header: &[u8], file_size: u64, machine: u16, page: usize) -> Result<Plan, LoadError> {
    let elf = Header::parse(header)?;
    if header[4] != NATIVE_CLASS {
        return Err(LoadError::WrongClass);
    }
    if elf.machine() != machine {
        return Err(LoadError::WrongMachine);
    }
    if elf.kind() != ET_DYN {
        return Err(LoadError::NotSharedObject);
    }
    let mut plan = Plan {
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
        first: 0,
        span: 0,
        align: page,
        entry: 0,
        notes: [(0, 0); MAX_NOTES],
        note_count: 0,
    };
    let mut end = 0usize;
    for ph in elf.program_headers()? {
        if ph.kind == PT_INTERP {
            // Jumping to a program's entry as if it were ld.so crashes it: it expects to be started by its own
            // interpreter (a PIE, `/proc/self/exe`, glibc's executable `libc.so.6`).
            return Err(LoadError::HasInterpreter);
        }
        if ph.kind == PT_NOTE && plan.note_count < MAX_NOTES {
            let offset = usize::try_from(ph.offset).map_err(|_| LoadError::Truncated)?;
            let size = usize::try_from(ph.filesz).map_err(|_| LoadError::Truncated)?;
            plan.notes[plan.note_count] = (offset, size);
            plan.note_count += 1;
        }
        if ph.kind != PT_LOAD || ph.memsz == 0 {
            continue;
        }
        if plan.count == MAX_SEGMENTS {
            return Err(LoadError::TooManySegments);
        }
        let field = |value: u64| usize::try_from(value).map_err(|_| LoadError::MisalignedSegment);
        let segment = Segment {
            vaddr: field(ph.vaddr)?,
            memsz: field(ph.memsz)?,
            offset: field(ph.offset)?,
            filesz: field(ph.filesz)?,
            flags: ph.flags,
        };
        let segment_end = segment.vaddr.checked_add(segment.memsz).ok_or(LoadError::MisalignedSegment)?;
        if segment.filesz > segment.memsz
            || segment.vaddr % page != segment.offset % page
            || segment.vaddr < end
        {
            return Err(LoadError::MisalignedSegment);
        }
        let file_end = ph.offset.checked_add(ph.filesz).ok_or(LoadError::Truncated)?;
        if file_end > file_size {
            return Err(LoadError::Truncated);
        }
        if let Ok(align) = usize::try_from(ph.align)
            && align.is_power_of_two()
            && align > plan.align
        {
            plan.align = align;
        }
        if plan.count == 0 {
            plan.first = page_down(segment.vaddr, page);
        }
        end = segment_end;
        plan.segments[plan.count] = segment;
        plan.count += 1;
    }
    if plan.count == 0 {
        return Err(LoadError::NoSegments);
    }
    plan.span = page_up(end, page).ok_or(LoadError::MisalignedSegment)? - plan.first;
    let entry = usize::try_from(elf.entry()).map_err(|_| LoadError::BadEntry)?;
    let executable = plan.segments().iter().any(|segment| {
        segment.flags & PF_X != 0 && entry >= segment.vaddr && entry - segment.vaddr < segment.memsz
    });
    if entry == 0 || !executable {
        return Err(LoadError::BadEntry);
    }
    plan.entry = entry;
    Ok(plan)
}

/// Returns true if and only if `notes` (the contents of one `PT_NOTE` segment) hold the shim's note.
pub fn notes_mark_shim(mut notes: &[u8]) -> bool {
    let pad = |n: usize| n.checked_add(3).map(|n| n & !3);
    while notes.len() >= 12 {
        let word = |at: usize| u32::from_le_bytes([notes[at], notes[at + 1], notes[at + 2], notes[at + 3]]);
        let (name_size, desc_size, kind) = (word(0) as usize, word(4) as usize, word(8));
        let (Some(name_padded), Some(desc_padded)) = (pad(name_size), pad(desc_size)) else {
            return false;
        };
        let Some(total) = name_padded.checked_add(desc_padded).and_then(|n| n.checked_add(12)) else {
            return false;
        };
        if total > notes.len() {
            return false;
        }
        let name = &notes[12..12 + name_size];
        let desc = &notes[12 + name_padded..12 + name_padded + desc_size];
        if kind == SHIM_NOTE_TYPE && name == SHIM_NOTE_NAME && desc == SHIM_NOTE_DESC {
            return true;
        }
        notes = &notes[total..];
    }
    false
}

/// Returns true if and only if `file` (a whole ELF file of either class) is an ld-shim build.
pub fn is_shim(file: &[u8]) -> bool {
    let Ok(elf) = Header::parse(file) else {
        return false;
    };
    let Ok(headers) = elf.program_headers() else {
        return false;
    };
    headers.filter(|ph| ph.kind == PT_NOTE).any(|ph| {
        let (Ok(start), Ok(size)) = (usize::try_from(ph.offset), usize::try_from(ph.filesz)) else {
            return false;
        };
        match start.checked_add(size).and_then(|end| file.get(start..end)) {
            Some(notes) => notes_mark_shim(notes),
            None => false,
        }
    })
}

/// Returns true if and only if `file` (the start of an ELF file of either class, holding its program header table)
/// names an interpreter (`PT_INTERP`), so that it cannot serve as a loader.
pub fn has_interpreter(file: &[u8]) -> bool {
    let Ok(elf) = Header::parse(file) else {
        return false;
    };
    elf.program_headers().is_ok_and(|mut headers| headers.any(|ph| ph.kind == PT_INTERP))
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::vec::Vec;

    const PAGE: usize = 4096;

    /// A 64-bit ET_DYN header with the given (type, flags, offset, vaddr, filesz, memsz) program headers.
    fn elf64(machine: u16, phdrs: &[(u32, u32, u64, u64, u64, u64)], entry: u64) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&3u16.to_le_bytes());
        out.extend_from_slice(&machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&entry.to_le_bytes());
        out.extend_from_slice(&64u64.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes());
        out.extend_from_slice(&56u16.to_le_bytes());
        out.extend_from_slice(&(phdrs.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 6]);
        for &(kind, flags, offset, vaddr, filesz, memsz) in phdrs {
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            for value in [offset, vaddr, vaddr, filesz, memsz, 0x1000] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        out
    }

    fn debian_ld_so() -> Vec<u8> {
        elf64(
            62,
            &[
                (PT_LOAD, PF_R, 0, 0, 0xd58, 0xd58),
                (PT_LOAD, PF_R | PF_X, 0x1000, 0x1000, 0x25111, 0x25111),
                (PT_LOAD, PF_R, 0x27000, 0x27000, 0x9c7c, 0x9c7c),
                (PT_LOAD, PF_R | PF_W, 0x31900, 0x31900, 0x2810, 0x29d8),
            ],
            0x1c50,
        )
    }

    #[test]
    fn plans_glibc_loader_like_the_kernel() {
        let plan = plan(&debian_ld_so(), 0x40000, 62, PAGE).unwrap();
        assert_eq!(plan.segments().len(), 4);
        assert_eq!(plan.first, 0);
        assert_eq!(plan.span, 0x35000);
        assert_eq!(plan.entry, 0x1c50);
        assert_eq!(plan.segments()[3].memsz, 0x29d8);
    }

    #[test]
    fn rejects_what_cannot_be_a_loader() {
        assert_eq!(plan(b"#!/bin/sh\n", 10, 62, PAGE).unwrap_err(), LoadError::NotElf);
        let mut wrong_class = debian_ld_so();
        wrong_class[4] = 1;
        assert_eq!(plan(&wrong_class, 0x40000, 62, PAGE).unwrap_err(), LoadError::WrongClass);
        assert_eq!(plan(&debian_ld_so(), 0x40000, 183, PAGE).unwrap_err(), LoadError::WrongMachine);
        assert_eq!(plan(&debian_ld_so(), 0x30000, 62, PAGE).unwrap_err(), LoadError::Truncated);
        let mut exec = debian_ld_so();
        exec[16] = 2;
        assert_eq!(plan(&exec, 0x40000, 62, PAGE).unwrap_err(), LoadError::NotSharedObject);
        let misaligned = elf64(62, &[(PT_LOAD, PF_R, 0x10, 0x20, 0x10, 0x10)], 0x20);
        assert_eq!(plan(&misaligned, 0x1000, 62, PAGE).unwrap_err(), LoadError::MisalignedSegment);
        let outside = elf64(62, &[(PT_LOAD, PF_R | PF_X, 0, 0, 0x100, 0x100)], 0x5000);
        assert_eq!(plan(&outside, 0x1000, 62, PAGE).unwrap_err(), LoadError::BadEntry);
        // A plain library: entry 0, or an entry in a segment that is not executable.
        let library = elf64(62, &[(PT_LOAD, PF_R | PF_X, 0, 0, 0x100, 0x100)], 0);
        assert_eq!(plan(&library, 0x1000, 62, PAGE).unwrap_err(), LoadError::BadEntry);
        let data_entry = elf64(62, &[(PT_LOAD, PF_R, 0, 0, 0x100, 0x100)], 0x10);
        assert_eq!(plan(&data_entry, 0x1000, 62, PAGE).unwrap_err(), LoadError::BadEntry);
        // A PIE program (or glibc's libc.so.6) has an interpreter of its own.
        let mut pie = debian_ld_so();
        pie[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
        assert!(has_interpreter(&pie));
        assert!(!has_interpreter(&debian_ld_so()));
        assert_eq!(plan(&pie, 0x40000, 62, PAGE).unwrap_err(), LoadError::HasInterpreter);
        assert_eq!(plan(&debian_ld_so()[..100], 0x40000, 62, PAGE).unwrap_err(), LoadError::HeadersTooLarge);
    }

    #[test]
    fn finds_the_shim_note() {
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&3u32.to_le_bytes());
        note.extend_from_slice(b"GNU\0abcd");
        note.extend_from_slice(&7u32.to_le_bytes());
        note.extend_from_slice(&8u32.to_le_bytes());
        note.extend_from_slice(&SHIM_NOTE_TYPE.to_le_bytes());
        note.extend_from_slice(b"fhskit\0\0ld-shim\0");
        assert!(notes_mark_shim(&note));
        assert!(!notes_mark_shim(&note[..note.len() - 1]));
        let note_offset = 64 + 2 * 56;
        let mut file = elf64(
            62,
            &[
                (PT_LOAD, PF_R | PF_X, 0, 0, 0x200, 0x200),
                (PT_NOTE, PF_R, note_offset as u64, 0, note.len() as u64, 0),
            ],
            0x10,
        );
        file.extend_from_slice(&note);
        assert!(is_shim(&file));
        assert!(!is_shim(&debian_ld_so()));
        let plan = plan(&file, 0x200, 62, PAGE).unwrap();
        assert_eq!(plan.notes(), &[(note_offset, note.len())]);
    }
}
