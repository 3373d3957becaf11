//! Phase 3 of the layout: the bytes. Headers and tables are rewritten where the placement put them, and the result
//! is expressed as a [`Rewrite`] (inserted bytes, then patches at output offsets).

use super::place::{Placement, Space};
use super::plan::{Plan, StrFit, patched_view, section_within};
use super::rules::{self, contains};
use super::{Context, Rewrite};
use crate::elf::Ehdr;
use crate::error::{Error, Result};
use crate::raw::*;

/// New space being filled.
struct Region {
    bytes: Vec<u8>,
    off: u64,
    vaddr: u64,
}

impl Region {
    fn put(&mut self, pos: u64, data: &[u8]) {
        self.bytes[pos as usize..pos as usize + data.len()].copy_from_slice(data);
    }
    fn at(&self, pos: u64) -> (u64, u64) {
        (self.off + pos, self.vaddr + pos)
    }
}

pub(super) fn write(cx: &Context<'_, '_, '_>, plan: &Plan, pl: &Placement) -> Result<Rewrite> {
    let elf = cx.elf;
    let fmt = cx.fmt;
    let data = elf.data;
    let out = |off: u64| pl.output_offset(cx, off);
    let z = |len: u64| vec![b'Z'; len as usize];
    // Old bytes blanked first, so anything written over them later wins.
    let mut early: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut patches: Vec<(u64, Vec<u8>)> =
        plan.patches.iter().map(|(off, b)| (out(*off), b.clone())).collect();
    let mut region = Region { bytes: vec![0; pl.len as usize], off: pl.origin.0, vaddr: pl.origin.1 };
    let mut phdrs = plan.phdrs.clone();
    let mut shdrs = plan.shdrs.clone();
    // Section `i` as it was, for matching by original offsets and addresses.
    let orig = |i: usize| cx.shdrs[i];

    // Pages opened after the program headers: everything behind them moves by the gap in the file, keeping its
    // addresses; the headers' LOAD splits into the part before (moved down by the gap) and the rest.
    let mut header_load: Option<(usize, Phdr)> = None;
    if let Space::Shift(s) = pl.space {
        for (i, p) in phdrs.iter_mut().enumerate() {
            if i != s.header && p.p_offset >= cx.pht_end {
                p.p_offset = p.p_offset.saturating_add(s.gap);
                if p.p_type == PT_LOAD {
                    p.p_align = rules::realigned(p, cx.page);
                }
            }
        }
        for sh in shdrs.iter_mut().skip(1) {
            if sh.sh_offset >= cx.pht_end {
                sh.sh_offset = sh.sh_offset.saturating_add(s.gap);
            }
        }
        let h = phdrs[s.header];
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
            let b = &mut phdrs[s.header];
            b.p_offset = cx.pht_end + s.gap;
            b.p_vaddr = b.p_vaddr.wrapping_add(cx.pht_end);
            b.p_paddr = b.p_paddr.wrapping_add(cx.pht_end);
            b.p_filesz -= cx.pht_end;
            b.p_memsz = b.p_memsz.saturating_sub(cx.pht_end);
            b.p_align = rules::realigned(b, cx.page);
            header_load = Some((s.header, a));
        } else {
            phdrs[s.header] = a;
        }
    }

    // .interp
    if let Some(i) = elf.phdrs.iter().position(|p| p.p_type == PT_INTERP) {
        let old = elf.phdrs[i];
        let old_range = (old.p_offset, old.file_end());
        if let Some((pos, bytes)) = &pl.interp {
            region.put(*pos, bytes);
            let (off, addr) = region.at(*pos);
            let len = bytes.len() as u64;
            phdrs[i] =
                Phdr { p_offset: off, p_vaddr: addr, p_paddr: addr, p_filesz: len, p_memsz: len, ..old };
            if cx.clobber {
                early.push((out(old.p_offset), z(old.p_filesz)));
            }
            for (k, sh) in shdrs.iter_mut().enumerate() {
                if section_within(&orig(k), old_range) {
                    (sh.sh_offset, sh.sh_addr, sh.sh_size) = (off, addr, len);
                }
            }
        } else if let Some(new) = &plan.interp {
            let mut bytes = new.bytes.clone();
            bytes.resize(old.p_filesz as usize, 0);
            patches.push((out(old.p_offset), bytes));
            let len = new.bytes.len() as u64;
            (phdrs[i].p_filesz, phdrs[i].p_memsz) = (len, len);
            for (k, sh) in shdrs.iter_mut().enumerate() {
                if orig(k).has_file_bytes() && orig(k).sh_offset == old.p_offset {
                    sh.sh_size = len;
                }
            }
        }
    }

    // Notes that make room for the program header table.
    for (unit, pos) in &pl.units {
        region.put(*pos, slice(data, unit.0, unit.1 - unit.0, "note segment out of bounds")?);
        let (off, addr) = region.at(*pos);
        for (k, p) in phdrs.iter_mut().enumerate() {
            let o = elf.phdrs[k];
            if o.p_type != PT_LOAD
                && o.p_type != PT_PHDR
                && o.p_filesz > 0
                && contains(*unit, (o.p_offset, o.file_end()))
            {
                let rel = o.p_offset - unit.0;
                (p.p_offset, p.p_vaddr, p.p_paddr) = (off + rel, addr + rel, addr + rel);
            }
        }
        for (k, sh) in shdrs.iter_mut().enumerate() {
            let o = orig(k);
            if section_within(&o, *unit) {
                let rel = o.sh_offset - unit.0;
                sh.sh_offset = off + rel;
                if o.sh_flags & SHF_ALLOC != 0 {
                    sh.sh_addr = addr + rel;
                }
            }
        }
        if cx.clobber {
            early.push((out(unit.0), z(unit.1 - unit.0)));
        }
    }

    // .dynstr, and the tables behind it when it grows in place.
    let mut new_strtab: Option<(u64, u64)> = None;
    let mut tag_updates: Vec<(u64, u64)> = Vec::new();
    if let Some(s) = &plan.dynstr {
        let len = s.table.len() as u64;
        let is_dynstr = |o: &Shdr| o.sh_type == SHT_STRTAB && o.sh_offset == s.off;
        match &s.fit {
            StrFit::Moves => {
                let pos =
                    pl.dynstr.ok_or_else(|| Error::Unsupported("no room for the string table".into()))?;
                region.put(pos, &s.table);
                let (off, addr) = region.at(pos);
                new_strtab = Some((addr, len));
                for (k, sh) in shdrs.iter_mut().enumerate() {
                    if is_dynstr(&orig(k)) && orig(k).sh_addr == s.addr {
                        (sh.sh_offset, sh.sh_addr, sh.sh_size) = (off, addr, len);
                    }
                }
                // The old copy is unreferenced now; blank it (or at least the blanked old run path in it).
                let old = if cx.clobber { z(s.size) } else { s.table[..s.size as usize].to_vec() };
                early.push((out(s.off), old));
            }
            StrFit::InPlace => patches.push((out(s.off), s.table.clone())),
            StrFit::Room(room) => {
                patches.push((out(s.off), s.table.clone()));
                new_strtab = Some((s.addr, len));
                for (k, sh) in shdrs.iter_mut().enumerate() {
                    if is_dynstr(&orig(k)) {
                        sh.sh_size = len;
                    }
                }
                let mut relocated: Vec<(super::plan::Table, u64, u64)> =
                    room.shifted.iter().map(|t| (*t, out(t.off + room.shift), t.addr + room.shift)).collect();
                if let (Some(t), Some(pos)) = (room.moved, pl.table) {
                    let (off, addr) = region.at(pos);
                    relocated.push((t, off, addr));
                }
                for (t, off, addr) in relocated {
                    let bytes = patched_view(cx, t.off, t.size)?;
                    match (Some(t) == room.moved, pl.table) {
                        (true, Some(pos)) => region.put(pos, &bytes),
                        _ => patches.push((off, bytes)),
                    }
                    tag_updates.push((t.tag, addr));
                    for (k, sh) in shdrs.iter_mut().enumerate() {
                        if orig(k).sh_addr == t.addr && orig(k).sh_offset == t.off {
                            (sh.sh_offset, sh.sh_addr) = (off, addr);
                        }
                    }
                }
            }
        }
    }

    // .dynamic
    if let Some(d) = &plan.dynamic {
        let mut entries = d.entries.clone();
        for e in entries.iter_mut() {
            match (e.tag, new_strtab) {
                (DT_STRTAB, Some((addr, _))) => e.val = addr,
                (DT_STRSZ, Some((_, size))) => e.val = size,
                _ => {}
            }
            if let Some((_, val)) = tag_updates.iter().find(|(tag, _)| *tag == e.tag) {
                e.val = *val;
            }
        }
        let size = d.capacity * fmt.dyn_size();
        let mut bytes = Vec::with_capacity(size as usize);
        for e in &entries {
            e.encode(fmt, &mut bytes);
        }
        bytes.resize(size as usize, 0);
        match pl.dynamic {
            Some(pos) => {
                region.put(pos, &bytes);
                let (off, addr) = region.at(pos);
                if let Some(i) = d.phdr {
                    let p = &mut phdrs[i];
                    (p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz) = (off, addr, addr, size, size);
                }
                for (k, sh) in shdrs.iter_mut().enumerate() {
                    let o = orig(k);
                    if o.sh_type == SHT_DYNAMIC
                        || (o.has_file_bytes() && o.sh_offset == d.off && o.sh_flags & SHF_ALLOC != 0)
                    {
                        (sh.sh_offset, sh.sh_addr, sh.sh_size) = (off, addr, size);
                    }
                }
            }
            None => patches.push((out(d.off), bytes)),
        }
    }

    // The program header list: the split-off headers' LOAD before the rest of it, a new LOAD after the last LOAD,
    // GNU_STACK and a note's PT_NOTE last, PT_NULLs dropped while the table is over its old size.
    let (seg_off, seg_vaddr) = pl.origin;
    if let Space::Append { extend: Some(i) } = pl.space {
        let p = &mut phdrs[i];
        p.p_filesz = seg_off + pl.len - p.p_offset;
        p.p_memsz = p.p_filesz;
        if pl.writable {
            p.p_flags |= PF_W;
        }
    }
    let new_load = Phdr {
        p_type: PT_LOAD,
        p_flags: PF_R | if pl.writable { PF_W } else { 0 },
        p_offset: seg_off,
        p_vaddr: seg_vaddr,
        p_paddr: seg_vaddr,
        p_filesz: pl.len,
        p_memsz: pl.len,
        p_align: cx.seg_align,
    };
    let last_load = phdrs.iter().rposition(|p| p.p_type == PT_LOAD);
    let mut list: Vec<Phdr> = Vec::with_capacity(pl.count);
    for (i, p) in phdrs.iter().enumerate() {
        if let Some((at, a)) = header_load
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
    let mut note_section: Option<Shdr> = None;
    if let (Some(note), Some(pos)) = (&plan.add_note, pl.note) {
        region.put(pos, note);
        let len = note.len() as u64;
        let (off, addr) = region.at(pos);
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
    let phsz = cx.phdr_size;
    let phoff_old = elf.ehdr.e_phoff;
    let (phoff, ph_vaddr) = match pl.pht {
        Some(pos) => region.at(pos),
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
    let pht_size = list.len() as u64 * phsz;
    for p in list.iter_mut().filter(|p| p.p_type == PT_PHDR) {
        (p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz) =
            (phoff, ph_vaddr, ph_vaddr, pht_size, pht_size);
    }
    if list != elf.phdrs {
        let mut bytes = Vec::with_capacity(pht_size as usize);
        for p in &list {
            p.encode(fmt, &mut bytes);
        }
        match pl.pht {
            Some(pos) => region.put(pos, &bytes),
            None => {
                let old_size = elf.phdrs.len() as u64 * phsz;
                if (bytes.len() as u64) < old_size {
                    bytes.resize(old_size as usize, 0);
                }
                patches.push((out(phoff), bytes));
            }
        }
        if list.len() != elf.phdrs.len() {
            let n = u16::try_from(list.len())
                .map_err(|_| Error::Unsupported("too many program headers".into()))?;
            patches.push((Ehdr::phnum_offset(fmt), fmt.u16_bytes(n)));
        }
        if phoff != phoff_old {
            patches.push((Ehdr::phoff_offset(fmt), fmt.word_bytes(phoff)));
        }
    }

    // New bytes: the pages after the program headers, and/or the segment and tables after the image.
    let mut inserts: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    match pl.space {
        Space::Shift(s) => {
            let mut gap = std::mem::take(&mut region.bytes);
            gap.resize(s.gap as usize, 0);
            inserts.push((cx.pht_end, gap));
        }
        Space::Append { .. } => {
            tail.resize((seg_off - cx.image_end) as usize, 0);
            tail.extend_from_slice(&region.bytes);
        }
        Space::None => {}
    }
    let tail_out = out(cx.image_end);

    // Section headers. A table that ends the image moves behind new data when a payload follows, since payload
    // finders (AppImage's runtime) locate it by the end of the section header table; a new section (the resolution-
    // cache note) needs a name in .shstrtab and a bigger table, both appended.
    let shsz = fmt.shdr_size();
    let sht_end = elf.ehdr.e_shoff + cx.shdrs.len() as u64 * shsz;
    let shnum_offset = 24 + 3 * fmt.word_size() + 12;
    let shoff_offset = 24 + 2 * fmt.word_size();
    let mut moved_sht = false;
    if let (Some(mut sh), false) = (note_section, cx.shdrs.is_empty()) {
        let strndx = usize::from(elf.ehdr.e_shstrndx);
        if let Some(strtab) = cx.shdrs.get(strndx).copied() {
            let old = slice(data, strtab.sh_offset, strtab.sh_size, "section name table out of bounds")?;
            let mut needle = crate::ldcache::SECTION_NAME.to_vec();
            needle.push(0);
            match memchr::memmem::find(old, &needle) {
                Some(pos) => sh.sh_name = pos as u32,
                None => {
                    let mut table = old.to_vec();
                    sh.sh_name = table.len() as u32;
                    table.extend_from_slice(&needle);
                    shdrs[strndx].sh_offset = tail_out + tail.len() as u64;
                    shdrs[strndx].sh_size = table.len() as u64;
                    tail.extend_from_slice(&table);
                }
            }
        }
        shdrs.push(sh);
        moved_sht = true;
    }
    let trailing = cx.image_end < data.len() as u64;
    if matches!(pl.space, Space::Append { .. }) && trailing && !cx.shdrs.is_empty() && sht_end == cx.image_end
    {
        moved_sht = true;
    }
    if moved_sht {
        let new_shoff = align_up(tail_out + tail.len() as u64, 8).unwrap_or(u64::MAX);
        tail.resize((new_shoff - tail_out) as usize, 0);
        for sh in &shdrs {
            sh.encode(fmt, &mut tail);
        }
        patches.push((shoff_offset, fmt.word_bytes(new_shoff)));
    } else if !cx.shdrs.is_empty() {
        let shoff = out(elf.ehdr.e_shoff);
        for (i, new) in shdrs.iter().enumerate() {
            if *new != cx.shdrs[i] {
                let mut bytes = Vec::new();
                new.encode(fmt, &mut bytes);
                patches.push((shoff + i as u64 * shsz, bytes));
            }
        }
        if shoff != elf.ehdr.e_shoff {
            patches.push((shoff_offset, fmt.word_bytes(shoff)));
        }
    } else if elf.ehdr.e_shoff != 0 && out(elf.ehdr.e_shoff) != elf.ehdr.e_shoff {
        // No section headers we use (`e_shnum` 0, perhaps extended numbering), but `e_shoff` still points at bytes
        // that moved: keep it pointing at them.
        patches.push((shoff_offset, fmt.word_bytes(out(elf.ehdr.e_shoff))));
    }
    if shdrs.len() != cx.shdrs.len() {
        let n = u16::try_from(shdrs.len()).map_err(|_| Error::Unsupported("too many sections".into()))?;
        patches.push((shnum_offset, fmt.u16_bytes(n)));
    }
    if !tail.is_empty() {
        inserts.push((cx.image_end, tail));
    }
    early.extend(patches);
    Ok(Rewrite { inserts, patches: early })
}
