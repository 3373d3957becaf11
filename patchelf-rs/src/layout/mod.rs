//! One layout pass for all edits of a call, in three phases:
//!
//! 1. `plan`: what changes, and which tables no longer fit where they are (`.interp`, `.dynstr`, `.dynamic`, a
//!    resolution-cache note to add or remove). Tables that still fit are rewritten in place; a grown `.dynstr` may
//!    stay by shifting the small tables behind it.
//! 2. `place`: where the new space goes and where each moved table lands in it. For a shared object or PIE it is
//!    one new `PT_LOAD` after the end of the image (or a grown one we added before); the program header table grows
//!    in place over the `.interp`/notes behind it (which then move too) or moves itself. For a non-PIE executable
//!    (`ET_EXEC`) it is whole pages opened right after the program header table by moving the LOAD that holds the
//!    headers down in memory, as patchelf does: the table grows in place and everything lands in the first pages.
//! 3. `write`: the resulting bytes, as a [`Rewrite`].
//!
//! Where a moved table may go and which segment covers it are the placement rules of `rules`. Nothing else moves, so
//! no `DT_*` pointer other than those of moved tables changes, and data appended after the ELF image (archives,
//! AppImage payloads) stays the end of the file.

mod place;
mod plan;
mod rules;
mod write;

use std::io::Write;

use crate::edit::Editor;
use crate::elf::Elf;
use crate::error::Result;
use crate::raw::*;

/// The changes to one file: `inserts` put new bytes into the input at input offsets (ascending; input bytes from
/// that offset on follow them), then `patches` overwrite the result at *output* offsets, in order (a later patch of
/// the same bytes wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub inserts: Vec<(u64, Vec<u8>)>,
    pub patches: Vec<(u64, Vec<u8>)>,
}

impl Rewrite {
    /// Whether applying this to `data` would leave it byte-identical.
    pub fn is_noop(&self, data: &[u8]) -> bool {
        self.inserts.iter().all(|(_, b)| b.is_empty())
            && self
                .patches
                .iter()
                .all(|(off, bytes)| slice(data, *off, bytes.len() as u64, "").ok() == Some(bytes))
    }

    /// The output offset of input offset `off`.
    pub fn output_offset(&self, off: u64) -> u64 {
        off + self.inserts.iter().filter(|(at, _)| *at <= off).map(|(_, b)| b.len() as u64).sum::<u64>()
    }

    /// The rewritten file as one buffer (for tests and small files; `output.rs` streams instead).
    pub fn apply(&self, data: &[u8]) -> Vec<u8> {
        let extra: usize = self.inserts.iter().map(|(_, b)| b.len()).sum();
        let mut out = Vec::with_capacity(data.len() + extra);
        let mut from = 0usize;
        for (at, bytes) in &self.inserts {
            let at = (*at as usize).min(data.len());
            out.extend_from_slice(&data[from..at]);
            out.extend_from_slice(bytes);
            from = at;
        }
        out.extend_from_slice(&data[from..]);
        for (off, bytes) in &self.patches {
            let off = *off as usize;
            out[off..off + bytes.len()].copy_from_slice(bytes);
        }
        out
    }
}

/// What every phase reads: the file, the edits, and sizes derived from them.
pub(super) struct Context<'x, 'e, 'a> {
    pub ed: &'x Editor<'e, 'a>,
    pub elf: &'e Elf<'a>,
    pub shdrs: Vec<Shdr>,
    pub fmt: Fmt,
    /// End of the ELF image: the furthest byte a header, segment or section claims; what follows is a payload.
    pub image_end: u64,
    pub phdr_size: u64,
    /// End of the program header table as it is.
    pub pht_end: u64,
    /// patchelf's page size (`--page-size`, else by machine): the unit of moving an executable's headers down.
    pub page: u64,
    /// The alignment of a new LOAD: at least what the file's LOADs ask for.
    pub seg_align: u64,
    /// The largest page a loader of this machine may use.
    pub runtime_page: u64,
    /// Overwrite the old bytes of moved tables with `'Z'`.
    pub clobber: bool,
}

/// Plans the rewrite for everything `ed` recorded.
pub fn plan(
    ed: &Editor<'_, '_>,
    page_size: u64,
    clobber: bool,
    log: &mut dyn Write,
    debug: bool,
) -> Result<Rewrite> {
    let elf = ed.elf;
    let shdrs = elf.sections()?;
    elf.check_sections(&shdrs)?;
    let fmt = elf.fmt;
    let phdr_size = fmt.phdr_size();
    // Like patchelf, a new segment is aligned to at least what the file's LOADs already ask for: a `--page-size`
    // below the real page size (or not a power of two) must not give a segment the kernel maps wrong.
    let seg_align = elf
        .phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_align.is_power_of_two())
        .map(|p| p.p_align)
        .fold(page_size, u64::max);
    let cx = Context {
        ed,
        elf,
        image_end: image_end(elf, &shdrs),
        shdrs,
        fmt,
        phdr_size,
        pht_end: elf.ehdr.e_phoff + elf.phdrs.len() as u64 * phdr_size,
        page: page_size,
        seg_align,
        runtime_page: page_size.max(crate::elf::default_page_size(elf.ehdr.e_machine)),
        clobber,
    };
    let plan = plan::Plan::new(&cx)?;
    let placement = place::place(&cx, &plan)?;
    if debug {
        let _ = writeln!(log, "layout: {}", placement.describe());
    }
    let rewrite = write::write(&cx, &plan, &placement)?;
    warn_unnamed_sections(elf, &cx.shdrs, log);
    Ok(rewrite)
}

/// Warns (as patchelf does) when a symbol refers to a section without a name: damaged section headers, which a
/// tool that renumbers sections by name would get wrong. Section indices are never changed here, so the symbols
/// stay right; the warning only says the file looks damaged.
fn warn_unnamed_sections(elf: &Elf<'_>, shdrs: &[Shdr], log: &mut dyn Write) {
    const SHN_LORESERVE: u16 = 0xff00;
    let fmt = elf.fmt;
    let shndx_at = if fmt.is64 { 6 } else { 14 };
    let unnamed = |i: u16| {
        shdrs.get(usize::from(i)).is_some_and(|s| s.sh_type != 0 && elf.section_name(shdrs, s).is_empty())
    };
    let mut warned = std::collections::BTreeSet::new();
    for tab in shdrs.iter().filter(|s| s.sh_type == SHT_SYMTAB || s.sh_type == SHT_DYNSYM) {
        let Ok(bytes) = slice(elf.data, tab.sh_offset, tab.sh_size, "") else { continue };
        for sym in bytes.chunks_exact(fmt.sym_size() as usize) {
            let Ok(i) = fmt.u16(sym, shndx_at, "") else { continue };
            if i != 0 && i < SHN_LORESERVE && unnamed(i) && warned.insert(i) {
                let _ = writeln!(
                    log,
                    "warning: symbol table entry refers to an unnamed section (index {i}), left as it is"
                );
            }
        }
    }
}

/// End of the ELF image: the furthest byte any header, segment or section claims (the file's end at most).
fn image_end(elf: &Elf<'_>, shdrs: &[Shdr]) -> u64 {
    let fmt = elf.fmt;
    let mut end = fmt.ehdr_size().max(elf.ehdr.e_phoff + elf.phdrs.len() as u64 * fmt.phdr_size());
    for p in &elf.phdrs {
        end = end.max(p.file_end());
    }
    for s in shdrs.iter().filter(|s| s.has_file_bytes()) {
        end = end.max(s.sh_offset.saturating_add(s.sh_size));
    }
    if !shdrs.is_empty() {
        end = end.max(elf.ehdr.e_shoff + shdrs.len() as u64 * fmt.shdr_size());
    } else if elf.ehdr.e_shoff != 0 {
        // No section headers to use, but `e_shoff` points somewhere (`e_shnum` 0 is also how extended numbering
        // starts: the count is then in the first entry's `sh_size`): keep what it points at inside the image.
        let shsz = fmt.shdr_size();
        if let Ok(first) = Shdr::read(fmt, elf.data, elf.ehdr.e_shoff) {
            let n = first.sh_size.max(1);
            let whole = n.checked_mul(shsz).and_then(|s| s.checked_add(elf.ehdr.e_shoff));
            end = end.max(whole.filter(|&e| e <= elf.data.len() as u64).unwrap_or(elf.ehdr.e_shoff + shsz));
        }
    }
    end.min(elf.data.len() as u64)
}

#[cfg(test)]
mod tests;
