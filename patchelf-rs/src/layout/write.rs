//! Phase 3 of the layout: the bytes. Each table is written where the placement put it and the headers that point
//! at it follow; the result is a [`Rewrite`] (inserted bytes, then patches at output offsets). One method per
//! table, in the order `write` calls them.

use super::place::{Placement, Space};
use super::plan::{DynTable, Plan, StrFit, Strings, Table, patched_view, section_within};
use super::rules::{self, contains};
use super::{Context, Rewrite};
use crate::elf::Ehdr;
use crate::error::{Error, Result};
use crate::raw::*;

pub(super) fn write(cx: &Context<'_, '_, '_>, plan: &Plan, pl: &Placement) -> Result<Rewrite> {
    let mut w = Writer {
        cx,
        pl,
        early: Vec::new(),
        patches: plan.patches.iter().map(|(off, b)| (pl.output_offset(cx, *off), b.clone())).collect(),
        region: vec![0; pl.len as usize],
        phdrs: plan.phdrs.clone(),
        shdrs: plan.shdrs.clone(),
        header_load: None,
    };
    if let Space::Shift(s) = pl.space {
        w.open_pages(s);
    }
    w.interp(plan);
    w.notes()?;
    let strtab = match &plan.dynstr {
        Some(s) => w.strings(s)?,
        None => Changes::default(),
    };
    if let Some(d) = &plan.dynamic {
        w.dynamic(d, &strtab);
    }
    let note_section = w.program_headers(plan)?;
    w.finish(note_section)
}

/// What moving `.dynstr` and its neighbours changes in `.dynamic`.
#[derive(Default)]
struct Changes {
    /// New `DT_STRTAB` and `DT_STRSZ`.
    strtab: Option<(u64, u64)>,
    /// New addresses of other tables, by tag.
    tags: Vec<(u64, u64)>,
}

struct Writer<'w, 'x, 'e, 'a> {
    cx: &'w Context<'x, 'e, 'a>,
    pl: &'w Placement,
    /// Old bytes blanked; written first, so anything written over them later wins.
    early: Vec<(u64, Vec<u8>)>,
    /// Writes at output offsets.
    patches: Vec<(u64, Vec<u8>)>,
    /// The new space's bytes, from the placement's origin.
    region: Vec<u8>,
    phdrs: Vec<Phdr>,
    shdrs: Vec<Shdr>,
    /// The LOAD split off below the headers' LOAD (`Space::Shift`), and where it goes in the list.
    header_load: Option<(usize, Phdr)>,
}

impl Writer<'_, '_, '_, '_> {
    fn out(&self, off: u64) -> u64 {
        self.pl.output_offset(self.cx, off)
    }

    /// Section `i` as it was, for matching by original offsets and addresses.
    fn orig(&self, i: usize) -> Shdr {
        self.cx.shdrs[i]
    }

    /// Puts bytes at a position of new space; returns their file offset and address.
    fn put(&mut self, pos: u64, data: &[u8]) -> (u64, u64) {
        self.region[pos as usize..pos as usize + data.len()].copy_from_slice(data);
        (self.pl.origin.0 + pos, self.pl.origin.1 + pos)
    }

    fn clobber(&mut self, off: u64, len: u64) {
        if self.cx.clobber {
            let at = self.out(off);
            self.early.push((at, vec![b'Z'; len as usize]));
        }
    }

    /// Pages opened after the program headers: everything behind them moves by the gap in the file, keeping its
    /// addresses; the headers' LOAD splits into the part before (moved down by the gap) and the rest.
    fn open_pages(&mut self, s: rules::Shift) {
        let (cx, pl) = (self.cx, self.pl);
        for (i, p) in self.phdrs.iter_mut().enumerate() {
            if i != s.header && p.p_offset >= cx.pht_end {
                p.p_offset = p.p_offset.saturating_add(s.gap);
                if p.p_type == PT_LOAD {
                    p.p_align = rules::realigned(p, cx.page);
                }
            }
        }
        for sh in self.shdrs.iter_mut().skip(1) {
            if sh.sh_offset >= cx.pht_end {
                sh.sh_offset = sh.sh_offset.saturating_add(s.gap);
            }
        }
        let h = self.phdrs[s.header];
        let used = cx.pht_end + pl.len;
        let mut a = Phdr {
            p_type: PT_LOAD,
            p_flags: PF_R | if pl.writable { PF_W } else { 0 },
            p_offset: 0,
            p_vaddr: h.p_vaddr - s.gap,
            p_paddr: h.p_paddr.wrapping_sub(s.gap),
            p_filesz: used,
            p_memsz: used,
            p_align: h.p_align,
        };
        a.p_align = rules::realigned(&a, cx.page);
        if h.file_end() > cx.pht_end {
            let b = &mut self.phdrs[s.header];
            b.p_offset = cx.pht_end + s.gap;
            b.p_vaddr = b.p_vaddr.wrapping_add(cx.pht_end);
            b.p_paddr = b.p_paddr.wrapping_add(cx.pht_end);
            b.p_filesz -= cx.pht_end;
            b.p_memsz = b.p_memsz.saturating_sub(cx.pht_end);
            b.p_align = rules::realigned(b, cx.page);
            self.header_load = Some((s.header, a));
        } else {
            self.phdrs[s.header] = a;
        }
    }

    /// `.interp`: moved into new space (a longer path, or out of the program headers' way) or rewritten in place.
    fn interp(&mut self, plan: &Plan) {
        let elf = self.cx.elf;
        let Some(i) = elf.phdrs.iter().position(|p| p.p_type == PT_INTERP) else { return };
        let old = elf.phdrs[i];
        let old_range = (old.p_offset, old.file_end());
        if let Some((pos, bytes)) = &self.pl.interp {
            let (off, addr) = self.put(*pos, bytes);
            let len = bytes.len() as u64;
            self.phdrs[i] =
                Phdr { p_offset: off, p_vaddr: addr, p_paddr: addr, p_filesz: len, p_memsz: len, ..old };
            self.clobber(old.p_offset, old.p_filesz);
            for k in 0..self.shdrs.len() {
                if section_within(&self.orig(k), old_range) {
                    let sh = &mut self.shdrs[k];
                    (sh.sh_offset, sh.sh_addr, sh.sh_size) = (off, addr, len);
                }
            }
        } else if let Some(new) = &plan.interp {
            let mut bytes = new.bytes.clone();
            bytes.resize(old.p_filesz as usize, 0);
            self.patches.push((self.out(old.p_offset), bytes));
            let len = new.bytes.len() as u64;
            (self.phdrs[i].p_filesz, self.phdrs[i].p_memsz) = (len, len);
            for k in 0..self.shdrs.len() {
                let o = self.orig(k);
                if o.has_file_bytes() && o.sh_offset == old.p_offset {
                    self.shdrs[k].sh_size = len;
                }
            }
        }
    }

    /// Notes that make room for the program header table, with the headers and sections that cover them.
    fn notes(&mut self) -> Result<()> {
        let elf = self.cx.elf;
        for &(unit, pos) in &self.pl.units {
            let bytes = slice(elf.data, unit.0, unit.1 - unit.0, "note segment out of bounds")?;
            let (off, addr) = self.put(pos, bytes);
            for (k, p) in self.phdrs.iter_mut().enumerate() {
                let o = elf.phdrs[k];
                if o.p_type != PT_LOAD
                    && o.p_type != PT_PHDR
                    && o.p_filesz > 0
                    && contains(unit, (o.p_offset, o.file_end()))
                {
                    let rel = o.p_offset - unit.0;
                    (p.p_offset, p.p_vaddr, p.p_paddr) = (off + rel, addr + rel, addr + rel);
                }
            }
            for k in 0..self.shdrs.len() {
                let o = self.orig(k);
                if section_within(&o, unit) {
                    let rel = o.sh_offset - unit.0;
                    self.shdrs[k].sh_offset = off + rel;
                    if o.sh_flags & SHF_ALLOC != 0 {
                        self.shdrs[k].sh_addr = addr + rel;
                    }
                }
            }
            self.clobber(unit.0, unit.1 - unit.0);
        }
        Ok(())
    }

    /// `.dynstr`: in place, grown in place over the tables behind it (which shift, one perhaps moving out), or
    /// moved into new space.
    fn strings(&mut self, s: &Strings) -> Result<Changes> {
        let len = s.table.len() as u64;
        let is_dynstr = |o: &Shdr| o.sh_type == SHT_STRTAB && o.sh_offset == s.off;
        let mut changes = Changes::default();
        match &s.fit {
            StrFit::InPlace => self.patches.push((self.out(s.off), s.table.clone())),
            StrFit::Moves => {
                let pos = self
                    .pl
                    .dynstr
                    .ok_or_else(|| Error::Unsupported("no room for the string table".into()))?;
                let (off, addr) = self.put(pos, &s.table);
                changes.strtab = Some((addr, len));
                for k in 0..self.shdrs.len() {
                    if is_dynstr(&self.orig(k)) && self.orig(k).sh_addr == s.addr {
                        let sh = &mut self.shdrs[k];
                        (sh.sh_offset, sh.sh_addr, sh.sh_size) = (off, addr, len);
                    }
                }
                // The old copy is unreferenced now; blank it (or at least the blanked old run path in it).
                let old = if self.cx.clobber {
                    vec![b'Z'; s.size as usize]
                } else {
                    s.table[..s.size as usize].to_vec()
                };
                self.early.push((self.out(s.off), old));
            }
            StrFit::Room(room) => {
                self.patches.push((self.out(s.off), s.table.clone()));
                changes.strtab = Some((s.addr, len));
                for k in 0..self.shdrs.len() {
                    if is_dynstr(&self.orig(k)) {
                        self.shdrs[k].sh_size = len;
                    }
                }
                let mut relocated: Vec<(Table, u64, u64)> = room
                    .shifted
                    .iter()
                    .map(|t| (*t, self.out(t.off + room.shift), t.addr + room.shift))
                    .collect();
                if let (Some(t), Some(pos)) = (room.moved, self.pl.table) {
                    let (off, addr) = (self.pl.origin.0 + pos, self.pl.origin.1 + pos);
                    relocated.push((t, off, addr));
                }
                for (t, off, addr) in relocated {
                    let bytes = patched_view(self.cx, t.off, t.size)?;
                    match (Some(t) == room.moved, self.pl.table) {
                        (true, Some(pos)) => {
                            self.put(pos, &bytes);
                        }
                        _ => self.patches.push((off, bytes)),
                    }
                    changes.tags.push((t.tag, addr));
                    for k in 0..self.shdrs.len() {
                        let o = self.orig(k);
                        if o.sh_addr == t.addr && o.sh_offset == t.off {
                            (self.shdrs[k].sh_offset, self.shdrs[k].sh_addr) = (off, addr);
                        }
                    }
                }
            }
        }
        Ok(changes)
    }

    /// `.dynamic` with its entries and the new addresses of what moved, in place or in new space.
    fn dynamic(&mut self, d: &DynTable, changes: &Changes) {
        let fmt = self.cx.fmt;
        let mut entries = d.entries.clone();
        for e in entries.iter_mut() {
            match (e.tag, changes.strtab) {
                (DT_STRTAB, Some((addr, _))) => e.val = addr,
                (DT_STRSZ, Some((_, size))) => e.val = size,
                _ => {}
            }
            if let Some((_, val)) = changes.tags.iter().find(|(tag, _)| *tag == e.tag) {
                e.val = *val;
            }
        }
        let size = d.capacity * fmt.dyn_size();
        let mut bytes = Vec::with_capacity(size as usize);
        for e in &entries {
            e.encode(fmt, &mut bytes);
        }
        bytes.resize(size as usize, 0);
        let Some(pos) = self.pl.dynamic else {
            self.patches.push((self.out(d.off), bytes));
            return;
        };
        let (off, addr) = self.put(pos, &bytes);
        if let Some(i) = d.phdr {
            let p = &mut self.phdrs[i];
            (p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz) = (off, addr, addr, size, size);
        }
        for k in 0..self.shdrs.len() {
            let o = self.orig(k);
            if o.sh_type == SHT_DYNAMIC
                || (o.has_file_bytes() && o.sh_offset == d.off && o.sh_flags & SHF_ALLOC != 0)
            {
                let sh = &mut self.shdrs[k];
                (sh.sh_offset, sh.sh_addr, sh.sh_size) = (off, addr, size);
            }
        }
    }

    /// The program header table: the split-off headers' LOAD before the rest of it, a new LOAD after the last LOAD,
    /// GNU_STACK and a new note's PT_NOTE last, PT_NULLs dropped while the table is over its old size. Returns the
    /// section header of a new note.
    fn program_headers(&mut self, plan: &Plan) -> Result<Option<Shdr>> {
        let (cx, pl) = (self.cx, self.pl);
        let (elf, fmt) = (cx.elf, cx.fmt);
        let (seg_off, seg_vaddr) = pl.origin;
        let writable = if pl.writable { PF_W } else { 0 };
        if let Space::Append { extend: Some(i) } = pl.space {
            let p = &mut self.phdrs[i];
            p.p_filesz = seg_off + pl.len - p.p_offset;
            p.p_memsz = p.p_filesz;
            p.p_flags |= writable;
        }
        let new_load = Phdr {
            p_type: PT_LOAD,
            p_flags: PF_R | writable,
            p_offset: seg_off,
            p_vaddr: seg_vaddr,
            p_paddr: seg_vaddr,
            p_filesz: pl.len,
            p_memsz: pl.len,
            p_align: cx.seg_align,
        };
        let last_load = self.phdrs.iter().rposition(|p| p.p_type == PT_LOAD);
        let mut list: Vec<Phdr> = Vec::with_capacity(pl.count);
        for (i, p) in self.phdrs.iter().enumerate() {
            if let Some((at, a)) = self.header_load
                && at == i
            {
                list.push(a);
            }
            list.push(*p);
            if pl.add_load && Some(i) == last_load {
                list.push(new_load);
            }
        }
        if pl.add_load && last_load.is_none() {
            list.push(new_load);
        }
        if let Some(flags) = plan.add_stack {
            list.push(Phdr { p_type: PT_GNU_STACK, p_flags: flags, p_align: 16, ..Phdr::default() });
        }
        let mut note_section = None;
        if let (Some(note), Some(pos)) = (&plan.add_note, pl.note) {
            let (off, addr) = self.put(pos, note);
            let len = note.len() as u64;
            list.push(Phdr {
                p_type: PT_NOTE,
                p_flags: PF_R,
                p_offset: off,
                p_vaddr: addr,
                p_paddr: addr,
                p_filesz: len,
                p_memsz: len,
                p_align: 4,
            });
            note_section = Some(Shdr {
                sh_type: SHT_NOTE,
                sh_flags: SHF_ALLOC,
                sh_addr: addr,
                sh_offset: off,
                sh_size: len,
                sh_addralign: 4,
                ..Shdr::default()
            });
        }
        for _ in 0..pl.nulls_to_drop {
            if let Some(i) = list.iter().rposition(|p| p.p_type == PT_NULL) {
                list.remove(i);
            }
        }
        // PT_PHDR follows the table: into new space, or where it is, at the address the LOAD holding it gives.
        let phoff_old = elf.ehdr.e_phoff;
        let (phoff, ph_vaddr) = match pl.pht {
            Some(pos) => (seg_off + pos, seg_vaddr + pos),
            None if matches!(pl.space, Space::Shift(_)) => {
                (phoff_old, rules::address_of(&list, phoff_old).unwrap_or(0))
            }
            None => (
                phoff_old,
                elf.phdrs
                    .iter()
                    .find(|p| p.p_type == PT_PHDR)
                    .map(|p| p.p_vaddr)
                    .or_else(|| rules::address_of(&elf.phdrs, phoff_old))
                    .unwrap_or(0),
            ),
        };
        let pht_size = list.len() as u64 * cx.phdr_size;
        for p in list.iter_mut().filter(|p| p.p_type == PT_PHDR) {
            (p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz) =
                (phoff, ph_vaddr, ph_vaddr, pht_size, pht_size);
        }
        if list == elf.phdrs {
            return Ok(note_section);
        }
        let mut bytes = Vec::with_capacity(pht_size as usize);
        for p in &list {
            p.encode(fmt, &mut bytes);
        }
        match pl.pht {
            Some(pos) => {
                self.put(pos, &bytes);
            }
            None => {
                let old_size = elf.phdrs.len() as u64 * cx.phdr_size;
                if (bytes.len() as u64) < old_size {
                    bytes.resize(old_size as usize, 0);
                }
                self.patches.push((self.out(phoff), bytes));
            }
        }
        if list.len() != elf.phdrs.len() {
            let n = u16::try_from(list.len())
                .map_err(|_| Error::Unsupported("too many program headers".into()))?;
            self.patches.push((Ehdr::phnum_offset(fmt), fmt.u16_bytes(n)));
        }
        if phoff != phoff_old {
            self.patches.push((Ehdr::phoff_offset(fmt), fmt.word_bytes(phoff)));
        }
        Ok(note_section)
    }

    /// The new bytes (the pages after the program headers, the segment after the image) and the section headers:
    /// a table that ends the image moves behind new data when a payload follows, since payload finders (AppImage's
    /// runtime) locate it by the end of the section header table; a new section (the resolution-cache note) needs a
    /// name in `.shstrtab` and a bigger table, both appended.
    fn finish(mut self, note_section: Option<Shdr>) -> Result<Rewrite> {
        let (cx, pl) = (self.cx, self.pl);
        let (elf, fmt) = (cx.elf, cx.fmt);
        let mut inserts: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut tail: Vec<u8> = Vec::new();
        match pl.space {
            Space::Shift(s) => {
                let mut gap = std::mem::take(&mut self.region);
                gap.resize(s.gap as usize, 0);
                inserts.push((cx.pht_end, gap));
            }
            Space::Append { .. } => {
                tail.resize((pl.origin.0 - cx.image_end) as usize, 0);
                tail.extend_from_slice(&self.region);
            }
            Space::None => {}
        }
        let tail_out = self.out(cx.image_end);
        let shsz = fmt.shdr_size();
        let shnum_offset = 24 + 3 * fmt.word_size() + 12;
        let shoff_offset = 24 + 2 * fmt.word_size();
        let mut moved_sht = false;
        if let (Some(mut sh), false) = (note_section, cx.shdrs.is_empty()) {
            let strndx = usize::from(elf.ehdr.e_shstrndx);
            if let Some(strtab) = cx.shdrs.get(strndx).copied() {
                let old =
                    slice(elf.data, strtab.sh_offset, strtab.sh_size, "section name table out of bounds")?;
                let mut needle = crate::ldcache::SECTION_NAME.to_vec();
                needle.push(0);
                match memchr::memmem::find(old, &needle) {
                    Some(pos) => sh.sh_name = pos as u32,
                    None => {
                        let mut table = old.to_vec();
                        sh.sh_name = table.len() as u32;
                        table.extend_from_slice(&needle);
                        self.shdrs[strndx].sh_offset = tail_out + tail.len() as u64;
                        self.shdrs[strndx].sh_size = table.len() as u64;
                        tail.extend_from_slice(&table);
                    }
                }
            }
            self.shdrs.push(sh);
            moved_sht = true;
        }
        let trailing = cx.image_end < elf.data.len() as u64;
        let sht_end = elf.ehdr.e_shoff + cx.shdrs.len() as u64 * shsz;
        if matches!(pl.space, Space::Append { .. })
            && trailing
            && !cx.shdrs.is_empty()
            && sht_end == cx.image_end
        {
            moved_sht = true;
        }
        if moved_sht {
            let new_shoff = align_up(tail_out + tail.len() as u64, 8).unwrap_or(u64::MAX);
            tail.resize((new_shoff - tail_out) as usize, 0);
            for sh in &self.shdrs {
                sh.encode(fmt, &mut tail);
            }
            self.patches.push((shoff_offset, fmt.word_bytes(new_shoff)));
        } else if !cx.shdrs.is_empty() {
            let shoff = self.out(elf.ehdr.e_shoff);
            for (i, new) in self.shdrs.iter().enumerate() {
                if *new != cx.shdrs[i] {
                    let mut bytes = Vec::new();
                    new.encode(fmt, &mut bytes);
                    self.patches.push((shoff + i as u64 * shsz, bytes));
                }
            }
            if shoff != elf.ehdr.e_shoff {
                self.patches.push((shoff_offset, fmt.word_bytes(shoff)));
            }
        } else if elf.ehdr.e_shoff != 0 && self.out(elf.ehdr.e_shoff) != elf.ehdr.e_shoff {
            // No section headers we use (`e_shnum` 0, perhaps extended numbering), but `e_shoff` still points at
            // bytes that moved: keep it pointing at them.
            let shoff = self.out(elf.ehdr.e_shoff);
            self.patches.push((shoff_offset, fmt.word_bytes(shoff)));
        }
        if self.shdrs.len() != cx.shdrs.len() {
            let n = u16::try_from(self.shdrs.len())
                .map_err(|_| Error::Unsupported("too many sections".into()))?;
            self.patches.push((shnum_offset, fmt.u16_bytes(n)));
        }
        if !tail.is_empty() {
            inserts.push((cx.image_end, tail));
        }
        let mut patches = self.early;
        patches.extend(self.patches);
        Ok(Rewrite { inserts, patches })
    }
}
