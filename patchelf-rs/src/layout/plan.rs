//! Phase 1 of the layout: what changes, and which tables no longer fit where they are. Nothing here depends on
//! where new space will be; `place.rs` decides that.

use super::Context;
use super::rules::{contains, overlaps};
use crate::elf::Ehdr;
use crate::error::{Error, Malformed, Result};
use crate::raw::*;

/// Everything the edits change, before placement.
#[derive(Debug)]
pub(super) struct Plan {
    /// Program headers with flag edits applied and a dropped note's headers turned into `PT_NULL`.
    pub phdrs: Vec<Phdr>,
    /// Section headers, a dropped note's removed (when last) or blanked.
    pub shdrs: Vec<Shdr>,
    /// Writes at input offsets that hold wherever new space goes: the OS ABI byte, the editor's in-place patches,
    /// a dropped note's zeros.
    pub patches: Vec<(u64, Vec<u8>)>,
    pub interp: Option<Interp>,
    pub dynstr: Option<Strings>,
    pub dynamic: Option<DynTable>,
    pub add_stack: Option<u32>,
    pub add_note: Option<Vec<u8>>,
}

/// A new interpreter path.
#[derive(Debug)]
pub(super) struct Interp {
    /// The path with its NUL.
    pub bytes: Vec<u8>,
    /// Whether it fits where the old one is.
    pub fits: bool,
}

/// The edited `.dynstr`.
#[derive(Debug)]
pub(super) struct Strings {
    pub off: u64,
    pub size: u64,
    pub addr: u64,
    pub table: Vec<u8>,
    pub fit: StrFit,
}

#[derive(Debug)]
pub(super) enum StrFit {
    /// No longer than the old table: written over it.
    InPlace,
    /// Grows in place: the small tables behind it shift, one may move out.
    Room(StrRoom),
    Moves,
}

/// A table reached through one `DT_*` address entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Table {
    pub tag: u64,
    pub off: u64,
    pub addr: u64,
    pub size: u64,
    pub align: u64,
}

/// How `.dynstr` grows in place: the tables right behind it shift by `shift` and `moved` goes to new space.
#[derive(Debug)]
pub(super) struct StrRoom {
    pub shift: u64,
    pub shifted: Vec<Table>,
    pub moved: Option<Table>,
}

/// The rewritten `.dynamic`.
#[derive(Debug)]
pub(super) struct DynTable {
    /// Index of `PT_DYNAMIC`, if the file has one (else only the `.dynamic` section locates the table).
    pub phdr: Option<usize>,
    pub off: u64,
    pub entries: Vec<Dyn>,
    /// Whether it needs more room than it has (then it moves, with room for exactly its entries and `DT_NULL`).
    pub moves: bool,
    /// Entries it has room for where it ends up.
    pub capacity: u64,
}

impl Plan {
    pub fn new(cx: &Context<'_, '_, '_>) -> Result<Plan> {
        let (ed, elf) = (cx.ed, cx.elf);
        let mut plan = Plan {
            phdrs: elf.phdrs.clone(),
            shdrs: cx.shdrs.clone(),
            patches: Vec::new(),
            interp: None,
            dynstr: None,
            dynamic: None,
            add_stack: ed.add_gnu_stack,
            add_note: ed.add_note.clone(),
        };
        if ed.osabi != elf.ehdr.osabi {
            plan.patches.push((Ehdr::OSABI_OFFSET, vec![ed.osabi]));
        }
        plan.patches.extend(ed.patches.iter().cloned());
        for (i, flags) in &ed.phdr_flags {
            plan.phdrs[*i].p_flags = *flags;
        }
        plan.drop_note(cx)?;

        if let Some(path) = &ed.interp {
            let old = elf.phdrs.iter().find(|p| p.p_type == PT_INTERP).ok_or_else(Error::no_interp)?;
            let bytes = [path.as_slice(), b"\0"].concat();
            let fits = bytes.len() as u64 <= old.p_filesz;
            plan.interp = Some(Interp { bytes, fits });
        }
        if let Some(table) = &ed.dynstr {
            let (off, size) = elf.dynstr_range()?;
            let addr = elf.dyn_val(DT_STRTAB).unwrap_or(0);
            let len = table.len() as u64;
            let fit = if len <= size {
                StrFit::InPlace
            } else {
                // Cheaper than copying a large string table: make room behind it, if the tables there are small.
                match dynstr_room(cx, off, size, len - size) {
                    Some(room) if room.moved.map_or(0, |t| t.size) < len => StrFit::Room(room),
                    _ => StrFit::Moves,
                }
            };
            plan.dynstr = Some(Strings { off, size, addr, table: table.clone(), fit });
        }
        if let Some(d) = &elf.dynamic {
            let strings_moved = plan.dynstr.as_ref().is_some_and(|s| !matches!(s.fit, StrFit::InPlace));
            if strings_moved || d.entries != ed.dyns {
                let moves = ed.dyns.len() as u64 + 1 > d.capacity;
                if !d.terminated {
                    // patchelf's wording for what it hits writing such a table.
                    return Err(Malformed::Invalid(
                        "dynamic section has no DT_NULL terminator; setSubstr: write extends past end of section",
                    )
                    .into());
                }
                let capacity = if moves { ed.dyns.len() as u64 + 1 } else { d.capacity };
                plan.dynamic = Some(DynTable {
                    phdr: d.phdr_index,
                    off: d.offset,
                    entries: ed.dyns.clone(),
                    moves,
                    capacity,
                });
            }
        }
        plan.check_rewritten_ranges(cx)?;
        Ok(plan)
    }

    /// Refuses a file whose edited tables share bytes with its headers or with each other (hostile or damaged
    /// input: rewriting one would overwrite the other, and the result would be corrupt).
    fn check_rewritten_ranges(&self, cx: &Context<'_, '_, '_>) -> Result<()> {
        const INTERP: &str = "the interpreter";
        const TABLE: &str = "a table behind the string table";
        const FIELD: &str = "an edited table";
        let elf = cx.elf;
        let mut headers = vec![
            ("the ELF header", (0, cx.fmt.ehdr_size())),
            ("the program headers", (elf.ehdr.e_phoff, cx.pht_end)),
        ];
        if !cx.shdrs.is_empty() {
            let shoff = elf.ehdr.e_shoff;
            headers
                .push(("the section headers", (shoff, shoff + cx.shdrs.len() as u64 * cx.fmt.shdr_size())));
        }
        let mut ranges: Vec<(&str, (u64, u64))> = Vec::new();
        if self.interp.is_some()
            && let Some(p) = elf.phdrs.iter().find(|p| p.p_type == PT_INTERP)
        {
            ranges.push((INTERP, (p.p_offset, p.file_end())));
        }
        if let Some(s) = &self.dynstr {
            ranges.push(("the dynamic string table", (s.off, s.off + s.size)));
            if let StrFit::Room(room) = &s.fit {
                for t in room.shifted.iter().chain(&room.moved) {
                    ranges.push((TABLE, (t.off, t.off + t.size)));
                    ranges.push((TABLE, (t.off + room.shift, t.off + room.shift + t.size)));
                }
            }
        }
        if let (Some(_), Some(d)) = (&self.dynamic, &elf.dynamic) {
            ranges.push(("the dynamic section", (d.offset, d.offset + d.size)));
        }
        if let Some(n) = &cx.ed.drop_note {
            ranges.push(("the resolution cache note", (n.off, n.off.saturating_add(n.size))));
        }
        for (off, bytes) in &cx.ed.patches {
            ranges.push((FIELD, (*off, off + bytes.len() as u64)));
        }
        // Fields edited in place may lie in the tables that shift (version records in `.gnu.version_r`).
        let compatible =
            |a: &str, b: &str| a == b || (a == FIELD && b == TABLE) || (a == TABLE && b == FIELD);
        for (i, (what, r)) in ranges.iter().enumerate() {
            if let Some((header, _)) = headers.iter().find(|(_, h)| overlaps(*h, *r)) {
                return Err(Error::Unsupported(format!("{what} overlaps {header}; the file is damaged")));
            }
            if let Some((other, _)) =
                ranges[..i].iter().find(|(o, q)| !compatible(o, what) && overlaps(*q, *r))
            {
                return Err(Error::Unsupported(format!("{what} overlaps {other}; the file is damaged")));
            }
        }
        Ok(())
    }

    /// Removes a stale resolution-cache note: its bytes are zeroed (the descriptor names store paths a Nix
    /// reference scan would find), the headers covering exactly it become `PT_NULL`, and its section header goes
    /// (when it is the last one; otherwise it becomes an unnamed `SHT_NULL` entry so no section index changes).
    fn drop_note(&mut self, cx: &Context<'_, '_, '_>) -> Result<()> {
        let Some(n) = &cx.ed.drop_note else { return Ok(()) };
        if slice(cx.elf.data, n.off, n.size, "").is_ok() && n.size > 0 {
            self.patches.push((n.off, vec![0; n.size as usize]));
        }
        for &i in &n.phdrs {
            self.phdrs[i] = Phdr::default();
        }
        if let Some(i) = n.section {
            if usize::from(cx.elf.ehdr.e_shstrndx) == i {
                return Err(Error::Unsupported(
                    "cannot remove resolution cache note: section name table index points to it".into(),
                ));
            }
            if i + 1 == self.shdrs.len() {
                self.shdrs.pop();
            } else {
                self.shdrs[i] = Shdr::default();
            }
            for s in self.shdrs.iter_mut().filter(|s| s.sh_link as usize == i) {
                s.sh_link = 0;
            }
        }
        Ok(())
    }

    /// Whether anything needs new space (program header growth aside).
    pub fn needs_space(&self) -> bool {
        self.interp.as_ref().is_some_and(|i| !i.fits)
            || self.dynstr.as_ref().is_some_and(|s| {
                matches!(&s.fit, StrFit::Moves | StrFit::Room(StrRoom { moved: Some(_), .. }))
            })
            || self.dynamic.as_ref().is_some_and(|d| d.moves)
            || self.add_note.is_some()
    }

    /// The table that moves out for `.dynstr` to grow in place, if any.
    pub fn moved_table(&self) -> Option<Table> {
        match &self.dynstr.as_ref()?.fit {
            StrFit::Room(room) => room.moved,
            _ => None,
        }
    }

    pub fn dynstr_moves(&self) -> bool {
        self.dynstr.as_ref().is_some_and(|s| matches!(s.fit, StrFit::Moves))
    }

    pub fn dynamic_moves(&self) -> bool {
        self.dynamic.as_ref().is_some_and(|d| d.moves)
    }
}

/// The original bytes of a range with the editor's in-place patches applied.
pub(super) fn patched_view(cx: &Context<'_, '_, '_>, off: u64, size: u64) -> Result<Vec<u8>> {
    let mut v = slice(cx.elf.data, off, size, "table out of bounds")?.to_vec();
    for (p_off, bytes) in &cx.ed.patches {
        for (k, b) in bytes.iter().enumerate() {
            let at = p_off + k as u64;
            if at >= off && at < off + size {
                v[(at - off) as usize] = *b;
            }
        }
    }
    Ok(v)
}

/// Tables that only `DT_*` entries (and section headers) point at, so they can move.
fn movable_tables(cx: &Context<'_, '_, '_>) -> Vec<Table> {
    let elf = cx.elf;
    let w = elf.fmt.word_size();
    let kinds: [(u64, Option<u64>, u64); 8] = [
        (DT_VERSYM, None, 2),
        (DT_VERNEED, None, w),
        (DT_VERDEF, None, w),
        (DT_RELA, Some(DT_RELASZ), w),
        (DT_REL, Some(DT_RELSZ), w),
        (DT_JMPREL, Some(DT_PLTRELSZ), w),
        (DT_HASH, None, 4),
        (DT_GNU_HASH, None, w),
    ];
    let mut out: Vec<Table> = Vec::new();
    for (tag, size_tag, default_align) in kinds {
        let Some(addr) = elf.dyn_val(tag) else { continue };
        let sect =
            cx.shdrs.iter().find(|s| s.sh_addr == addr && s.sh_flags & SHF_ALLOC != 0 && s.has_file_bytes());
        let size = match (sect, size_tag) {
            (Some(s), _) => s.sh_size,
            (None, Some(t)) => match elf.dyn_val(t) {
                Some(v) => v,
                None => continue,
            },
            (None, None) if tag == DT_VERSYM => match elf.dynsym_count() {
                Ok(n) => n * 2,
                Err(_) => continue,
            },
            _ => continue,
        };
        let align = sect.map_or(default_align, |s| s.sh_addralign).max(1);
        let Ok(off) = elf.vaddr_to_offset(addr, size, "") else { continue };
        out.push(Table { tag, off, addr, size, align });
    }
    // Tables sharing bytes (a PLT relocation range inside the general one) stay put.
    let shared: Vec<bool> = out
        .iter()
        .enumerate()
        .map(|(i, a)| {
            out.iter()
                .enumerate()
                .any(|(j, b)| i != j && overlaps((a.off, a.off + a.size), (b.off, b.off + b.size)))
        })
        .collect();
    let mut out: Vec<Table> = out.into_iter().zip(shared).filter(|(_, s)| !s).map(|(t, _)| t).collect();
    out.sort_by_key(|t| t.off);
    out
}

/// How `.dynstr` at `[off, off + size)` can grow by `grow` bytes in place: into free bytes behind it, or by
/// shifting the tables behind it and moving one of them out. The cheapest plan, if any.
fn dynstr_room(cx: &Context<'_, '_, '_>, off: u64, size: u64, grow: u64) -> Option<StrRoom> {
    let elf = cx.elf;
    let end = off + size;
    let load = elf.phdrs.iter().find(|p| p.p_type == PT_LOAD && p.p_offset <= off && end <= p.file_end())?;
    let tables: Vec<Table> = movable_tables(cx)
        .into_iter()
        .filter(|t| t.off >= end && t.off + t.size <= load.file_end())
        .collect();
    let mut others: Vec<(u64, u64)> = Vec::new();
    for s in cx.shdrs.iter().filter(|s| s.has_file_bytes()) {
        let r = (s.sh_offset, s.sh_offset.saturating_add(s.sh_size));
        if !tables.iter().any(|t| (t.off, t.off + t.size) == r) {
            others.push(r);
        }
    }
    for p in elf.phdrs.iter().filter(|p| p.p_filesz > 0 && p.p_type != PT_LOAD && p.p_type != PT_NULL) {
        others.push((p.p_offset, p.file_end()));
    }
    // Without section headers unknown bytes may be anything, so only short zero padding counts as free.
    let no_sections = cx.shdrs.is_empty();
    let free = |a: u64, b: u64| {
        a <= b
            && b <= load.file_end()
            && (!no_sections || b - a < 16)
            && slice(elf.data, a, b - a, "").is_ok_and(|g| g.iter().all(|&x| x == 0))
            && !others.iter().any(|r| overlaps(*r, (a, b)))
            && !tables.iter().any(|t| overlaps((t.off, t.off + t.size), (a, b)))
    };
    if !no_sections && free(end, end + grow) {
        return Some(StrRoom { shift: 0, shifted: Vec::new(), moved: None });
    }
    let mut chain: Vec<Table> = Vec::new();
    let mut cursor = end;
    for t in &tables {
        if !free(cursor, t.off) {
            break;
        }
        chain.push(*t);
        cursor = t.off + t.size;
    }
    let mut best: Option<StrRoom> = None;
    for k in 0..chain.len() {
        let moved = chain[k];
        let align = chain[..k].iter().map(|t| t.align).max().unwrap_or(1);
        let shift = align_up(grow, align)?;
        let needed_end = if k == 0 { end + grow } else { chain[k - 1].off + chain[k - 1].size + shift };
        if needed_end > moved.off + moved.size {
            continue;
        }
        if best.as_ref().is_none_or(|b| b.moved.is_some_and(|m| m.size > moved.size)) {
            best = Some(StrRoom { shift, shifted: chain[..k].to_vec(), moved: Some(moved) });
        }
    }
    best
}

/// Whether section `s` lies wholly within file range `r`.
pub(super) fn section_within(s: &Shdr, r: (u64, u64)) -> bool {
    s.has_file_bytes() && contains(r, (s.sh_offset, s.sh_offset.saturating_add(s.sh_size)))
}
