//! One layout pass for all edits of a call: decides what is rewritten in place and what moves into one new
//! `PT_LOAD` added at the end of the ELF image, then produces the byte changes as a [`Rewrite`].
//!
//! Only tables that no longer fit move: `.interp`, `.dynstr`, `.dynamic`, and, when the program header table needs
//! more entries than it has room for, the notes and `.interp` right behind it (or, failing that, the table itself).
//! Nothing else moves, so no `DT_*` pointer other than `DT_STRTAB`/`DT_STRSZ` changes; existing bytes keep their
//! offsets, and data appended after the ELF image (archives, AppImage payloads) stays the end of the file. The new segment's
//! `p_offset ≡ p_vaddr (mod p_align)` without padding the file to a page boundary, so growth is just its contents.

use std::io::Write;

use crate::edit::Editor;
use crate::elf::Ehdr;
use crate::error::{Error, Result};
use crate::raw::*;

/// The changes to one file: in-place writes over the original bytes (applied in order), then bytes inserted at
/// `insert_at`, the end of the ELF image: data after the image (an archive or AppImage payload) moves behind them
/// and so stays the end of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub patches: Vec<(u64, Vec<u8>)>,
    pub insert_at: u64,
    pub insert: Vec<u8>,
}

impl Rewrite {
    /// Whether applying this to `data` would leave it byte-identical.
    pub fn is_noop(&self, data: &[u8]) -> bool {
        self.insert.is_empty()
            && self
                .patches
                .iter()
                .all(|(off, bytes)| slice(data, *off, bytes.len() as u64, "").ok() == Some(bytes))
    }

    /// The rewritten file as one buffer (for tests and small files; `output.rs` streams instead).
    pub fn apply(&self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        for (off, bytes) in &self.patches {
            let off = *off as usize;
            out[off..off + bytes.len()].copy_from_slice(bytes);
        }
        let at = self.insert_at as usize;
        out.splice(at..at, self.insert.iter().copied());
        out
    }
}

/// Where the program header table ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhtPlace {
    /// Same offset; grown over bytes that moved away, or reusing `PT_NULL` slots.
    InPlace,
    /// Into the new segment.
    Moved,
}

/// Room for a grown program header table at its current place.
#[derive(Debug)]
struct Room {
    interp_in_way: bool,
    /// Note ranges (merged `PT_NOTE`/`PT_GNU_PROPERTY` extents) that must move out of the way.
    units: Vec<(u64, u64)>,
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}
fn contains(outer: (u64, u64), inner: (u64, u64)) -> bool {
    outer.0 <= inner.0 && inner.1 <= outer.1
}

/// A table reached through one `DT_*` address entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Table {
    tag: u64,
    off: u64,
    addr: u64,
    size: u64,
    align: u64,
}

/// How `.dynstr` grows in place: the tables right behind it shift by `shift` and `moved` goes to the new segment.
#[derive(Debug)]
struct StrRoom {
    shift: u64,
    shifted: Vec<Table>,
    moved: Option<Table>,
}

/// Bump allocator for the new segment: positions relative to its start.
#[derive(Debug, Default)]
struct SegmentBuilder {
    len: u64,
}

impl SegmentBuilder {
    /// Reserves `size` bytes at a position `≡ phase (mod align)`.
    fn reserve(&mut self, size: u64, align: u64, phase: u64) -> u64 {
        let align = align.max(1);
        let mut pos = self.len / align * align + phase % align;
        if pos < self.len {
            pos += align;
        }
        self.len = pos + size;
        pos
    }
}

struct Layout<'x, 'e, 'a> {
    ed: &'x Editor<'e, 'a>,
    shdrs: Vec<Shdr>,
}

/// Plans the rewrite for everything `ed` recorded.
pub fn plan(
    ed: &Editor<'_, '_>,
    page_size: u64,
    clobber: bool,
    log: &mut dyn Write,
    debug: bool,
) -> Result<Rewrite> {
    let shdrs = ed.elf.sections()?;
    Layout { ed, shdrs }.run(page_size, clobber, log, debug)
}

impl Layout<'_, '_, '_> {
    fn run(&self, page_size: u64, clobber: bool, log: &mut dyn Write, debug: bool) -> Result<Rewrite> {
        let ed = self.ed;
        let elf = ed.elf;
        // The largest page a loader of this machine may use: the zero-filled page tails it leaves (see
        // `zero_filled_tails`) are that long.
        let runtime_page = page_size.max(crate::elf::default_page_size(elf.ehdr.e_machine));
        // Like patchelf, a new segment is aligned to at least what the file's LOADs already ask for: a `--page-size`
        // below the real page size (or not a power of two) must not give a segment the kernel maps wrong.
        let page_size = elf
            .phdrs
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.p_align.is_power_of_two())
            .map(|p| p.p_align)
            .fold(page_size, u64::max);
        let fmt = elf.fmt;
        let data = elf.data;
        // New bytes go at the end of the ELF image, in front of any trailing payload.
        let file_len = self.image_end();
        let trailing = file_len < data.len() as u64;
        let phsz = fmt.phdr_size();
        let esz = fmt.dyn_size();
        let mut early: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut patches: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut trace = |msg: String| {
            if debug {
                let _ = writeln!(log, "{msg}");
            }
        };

        if ed.osabi != elf.ehdr.osabi {
            patches.push((Ehdr::OSABI_OFFSET, vec![ed.osabi]));
        }
        patches.extend(ed.patches.iter().cloned());

        let mut phdrs = elf.phdrs.clone();
        for (i, flags) in &ed.phdr_flags {
            phdrs[*i].p_flags = *flags;
        }
        let mut shdrs = self.shdrs.clone();
        // A stale resolution-cache note: its PT_NOTE becomes a free PT_NULL slot, its section inert.
        if let Some(n) = &ed.drop_note {
            let p = phdrs[n.phdr_index];
            if p.p_offset == n.off && p.p_filesz == n.size {
                phdrs[n.phdr_index] = Phdr::default();
                patches.push((n.off, vec![0; n.size as usize]));
                for sh in shdrs.iter_mut().filter(|s| s.sh_type == SHT_NOTE && s.sh_offset == n.off) {
                    *sh = Shdr { sh_name: sh.sh_name, ..Shdr::default() };
                }
            }
        }
        let need_note = ed.add_note.is_some();

        // Decide what moves.
        let interp_idx = phdrs.iter().position(|p| p.p_type == PT_INTERP);
        let new_interp: Option<Vec<u8>> = ed.interp.as_ref().map(|s| [s.as_slice(), b"\0"].concat());
        let mut interp_moves = false;
        if let Some(ni) = &new_interp {
            let i = interp_idx.ok_or_else(Error::no_interp)?;
            interp_moves = ni.len() as u64 > phdrs[i].p_filesz;
        }
        let dynstr_range = match &ed.dynstr {
            Some(_) => Some(elf.dynstr_range()?),
            None => None,
        };
        let mut dynstr_moves =
            matches!((&ed.dynstr, dynstr_range), (Some(t), Some((_, sz))) if t.len() as u64 > sz);
        // A grown .dynstr may stay where it is if the small tables behind it can make room (cheaper than copying
        // a large string table).
        let mut str_room: Option<StrRoom> = None;
        if let (true, Some(table), Some((off, size))) = (dynstr_moves, &ed.dynstr, dynstr_range) {
            let grow = table.len() as u64 - size;
            if let Some(room) = self.dynstr_room(off, size, grow)
                && room.moved.map_or(0, |t| t.size) < size + grow
            {
                dynstr_moves = false;
                str_room = Some(room);
            }
        }
        let table_moves = str_room.as_ref().is_some_and(|r| r.moved.is_some());
        let dynamic = elf.dynamic.as_ref();
        let dynamic_moves = dynamic.is_some_and(|d| ed.dyns.len() as u64 + 1 > d.capacity);
        let dyn_changed = dynamic.is_some_and(|d| d.entries != ed.dyns) || dynstr_moves || str_room.is_some();

        let old_n = phdrs.len();
        let nonnull = phdrs.iter().filter(|p| p.p_type != PT_NULL).count();
        let need_stack = ed.add_gnu_stack.is_some();
        // A last LOAD that ends the file (typically one we added before) grows instead of a new one being added,
        // so repeated calls stay bounded.
        let extend = self.extendable_load();
        let mut units: Vec<(u64, u64)> = Vec::new();
        let mut pht = PhtPlace::InPlace;
        let mut settled = false;
        for _ in 0..8 {
            let need_load = interp_moves
                || dynstr_moves
                || table_moves
                || dynamic_moves
                || need_note
                || !units.is_empty()
                || pht == PhtPlace::Moved;
            let count = nonnull
                + usize::from(need_load && extend.is_none())
                + usize::from(need_stack)
                + usize::from(need_note);
            if count <= old_n || pht == PhtPlace::Moved {
                settled = true;
                break;
            }
            let new_end = elf.ehdr.e_phoff + count as u64 * phsz;
            // A .dynstr that moves anyway leaves its old bytes free for the table to grow over.
            let freed: Vec<(u64, u64)> =
                dynstr_range.filter(|_| dynstr_moves).map(|(o, sz)| (o, o + sz)).into_iter().collect();
            match self.grow_room(new_end, &freed) {
                Some(room) => {
                    interp_moves |= room.interp_in_way;
                    units = room.units;
                    let need_load2 = interp_moves
                        || dynstr_moves
                        || table_moves
                        || dynamic_moves
                        || need_note
                        || !units.is_empty();
                    if need_load2 == need_load {
                        settled = true;
                        break;
                    }
                }
                None => pht = PhtPlace::Moved,
            }
        }
        if !settled {
            pht = PhtPlace::Moved;
        }
        if pht == PhtPlace::Moved {
            // Moving the table itself frees its neighbours; nothing else needs to move for its sake.
            units.clear();
            interp_moves = new_interp
                .as_ref()
                .zip(interp_idx)
                .is_some_and(|(ni, i)| ni.len() as u64 > phdrs[i].p_filesz);
        }
        let need_load = interp_moves
            || dynstr_moves
            || table_moves
            || dynamic_moves
            || need_note
            || !units.is_empty()
            || pht == PhtPlace::Moved;
        let add_load = need_load && extend.is_none();
        trace(format!(
            "layout: interp moves {interp_moves}, dynstr moves {dynstr_moves}, dynamic moves {dynamic_moves}, \
             {} note range(s) move, program headers {pht:?}, new segment {need_load}",
            units.len()
        ));

        // The final program header list: a new LOAD after the last LOAD, a new GNU_STACK last, PT_NULLs dropped
        // while the table is over its old size.
        let last_load = phdrs.iter().rposition(|p| p.p_type == PT_LOAD);
        let mut count =
            phdrs.len() + usize::from(add_load) + usize::from(need_stack) + usize::from(need_note);
        let mut nulls_to_drop = 0;
        if count > old_n {
            nulls_to_drop = (count - old_n).min(phdrs.len() - nonnull);
            count -= nulls_to_drop;
        }

        // Reserve the new segment.
        let mut seg = SegmentBuilder::default();
        let pht_pos = (pht == PhtPlace::Moved).then(|| seg.reserve(count as u64 * phsz, 8, 0));
        let new_cap = ed.dyns.len() as u64 + 1;
        let dyn_pos = dynamic_moves.then(|| seg.reserve(new_cap * esz, fmt.word_size(), 0));
        let unit_pos: Vec<u64> = units.iter().map(|u| seg.reserve(u.1 - u.0, 16, u.0)).collect();
        let interp_bytes: Option<Vec<u8>> = if interp_moves {
            let i = interp_idx.ok_or_else(Error::no_interp)?;
            Some(match &new_interp {
                Some(ni) => ni.clone(),
                None => {
                    slice(data, phdrs[i].p_offset, phdrs[i].p_filesz, "interpreter out of bounds")?.to_vec()
                }
            })
        } else {
            None
        };
        let interp_pos = interp_bytes.as_ref().map(|b| seg.reserve(b.len() as u64, 1, 0));
        let note_pos = ed.add_note.as_ref().map(|n| seg.reserve(n.len() as u64, 4, 0));
        let moved_table = str_room.as_ref().and_then(|r| r.moved);
        let table_pos = moved_table.map(|t| seg.reserve(t.size, t.align, t.off));
        let dynstr_pos =
            dynstr_moves.then(|| seg.reserve(ed.dynstr.as_ref().map_or(0, |t| t.len() as u64), 1, 0));

        let (seg_off, seg_vaddr) = match (need_load, extend) {
            (false, _) => (0, 0),
            (true, Some(i)) => {
                let last = phdrs[i];
                let mut off =
                    align_up(file_len, 16).ok_or_else(|| Error::Unsupported("file too large".into()))?;
                if pht == PhtPlace::Moved {
                    off = clear_of(off, count as u64 * phsz, &zero_filled_tails(&elf.phdrs, runtime_page));
                }
                let vaddr = last.p_vaddr + (off - last.p_offset);
                let limit = if fmt.is64 { u64::MAX } else { u64::from(u32::MAX) };
                if vaddr.checked_add(seg.len).is_none_or(|e| e > limit) {
                    return Err(Error::Unsupported("new segment does not fit in the address space".into()));
                }
                let p = &mut phdrs[i];
                p.p_filesz = off + seg.len - p.p_offset;
                p.p_memsz = p.p_filesz;
                if dynamic_moves {
                    p.p_flags |= PF_W;
                }
                (off, vaddr)
            }
            (true, None) => self.place_segment(
                seg.len,
                page_size,
                (pht == PhtPlace::Moved).then_some((count as u64 * phsz, runtime_page)),
            )?,
        };
        if need_load {
            trace(format!("new segment at offset 0x{seg_off:x}, address 0x{seg_vaddr:x}, {} bytes", seg.len));
        }
        let mut seg_bytes = vec![0u8; seg.len as usize];
        let mut put = |pos: u64, bytes: &[u8]| {
            seg_bytes[pos as usize..pos as usize + bytes.len()].copy_from_slice(bytes);
        };
        let z = |len: u64| vec![b'Z'; len as usize];

        // .interp
        if let Some(i) = interp_idx {
            let old = phdrs[i];
            let old_range = (old.p_offset, old.file_end());
            if let (Some(pos), Some(bytes)) = (interp_pos, &interp_bytes) {
                put(pos, bytes);
                let len = bytes.len() as u64;
                phdrs[i] = Phdr {
                    p_offset: seg_off + pos,
                    p_vaddr: seg_vaddr + pos,
                    p_paddr: seg_vaddr + pos,
                    p_filesz: len,
                    p_memsz: len,
                    ..old
                };
                if clobber {
                    early.push((old.p_offset, z(old.p_filesz)));
                }
                for sh in shdrs.iter_mut().filter(|s| {
                    s.has_file_bytes()
                        && contains(old_range, (s.sh_offset, s.sh_offset.saturating_add(s.sh_size)))
                }) {
                    sh.sh_offset = seg_off + pos;
                    sh.sh_addr = seg_vaddr + pos;
                    sh.sh_size = len;
                }
            } else if let Some(ni) = &new_interp {
                let mut bytes = ni.clone();
                bytes.resize(old.p_filesz as usize, 0);
                patches.push((old.p_offset, bytes));
                let len = ni.len() as u64;
                phdrs[i].p_filesz = len;
                phdrs[i].p_memsz = len;
                for sh in shdrs.iter_mut().filter(|s| s.has_file_bytes() && s.sh_offset == old.p_offset) {
                    sh.sh_size = len;
                }
            }
        }

        // Notes behind the program header table.
        for (unit, pos) in units.iter().zip(&unit_pos) {
            let bytes = slice(data, unit.0, unit.1 - unit.0, "note segment out of bounds")?;
            put(*pos, bytes);
            let new_off = seg_off + pos;
            let new_addr = seg_vaddr + pos;
            for p in phdrs.iter_mut().filter(|p| p.p_type != PT_LOAD && p.p_type != PT_PHDR && p.p_filesz > 0)
            {
                if contains(*unit, (p.p_offset, p.file_end())) {
                    let rel = p.p_offset - unit.0;
                    p.p_offset = new_off + rel;
                    p.p_vaddr = new_addr + rel;
                    p.p_paddr = new_addr + rel;
                }
            }
            for sh in shdrs.iter_mut().filter(|s| s.has_file_bytes()) {
                if contains(*unit, (sh.sh_offset, sh.sh_offset.saturating_add(sh.sh_size))) {
                    let rel = sh.sh_offset - unit.0;
                    sh.sh_offset = new_off + rel;
                    if sh.sh_flags & SHF_ALLOC != 0 {
                        sh.sh_addr = new_addr + rel;
                    }
                }
            }
            if clobber {
                early.push((unit.0, z(unit.1 - unit.0)));
            }
        }

        // .dynstr
        let mut new_strtab: Option<(u64, u64)> = None;
        let mut tag_updates: Vec<(u64, u64)> = Vec::new();
        if let (Some(table), Some((old_off, old_size))) = (&ed.dynstr, dynstr_range) {
            if let Some(pos) = dynstr_pos {
                put(pos, table);
                new_strtab = Some((seg_vaddr + pos, table.len() as u64));
                let old_addr = elf.dyn_val(DT_STRTAB).unwrap_or(0);
                for sh in shdrs
                    .iter_mut()
                    .filter(|s| s.sh_type == SHT_STRTAB && s.sh_offset == old_off && s.sh_addr == old_addr)
                {
                    sh.sh_offset = seg_off + pos;
                    sh.sh_addr = seg_vaddr + pos;
                    sh.sh_size = table.len() as u64;
                }
                // The old copy is unreferenced now; blank it (or at least the blanked old run path in it).
                if clobber {
                    early.push((old_off, z(old_size)));
                } else {
                    early.push((old_off, table[..old_size as usize].to_vec()));
                }
            } else {
                patches.push((old_off, table.clone()));
                if let Some(room) = &str_room {
                    new_strtab = Some((elf.dyn_val(DT_STRTAB).unwrap_or(0), table.len() as u64));
                    for sh in shdrs.iter_mut().filter(|s| s.sh_type == SHT_STRTAB && s.sh_offset == old_off) {
                        sh.sh_size = table.len() as u64;
                    }
                    let mut relocated: Vec<(Table, u64, u64)> =
                        room.shifted.iter().map(|t| (*t, t.off + room.shift, t.addr + room.shift)).collect();
                    if let (Some(t), Some(pos)) = (room.moved, table_pos) {
                        relocated.push((t, seg_off + pos, seg_vaddr + pos));
                    }
                    for (t, off, addr) in relocated {
                        let bytes = self.patched_view(t.off, t.size)?;
                        if Some(t) == room.moved {
                            put(table_pos.unwrap_or(0), &bytes);
                        } else {
                            patches.push((off, bytes));
                        }
                        tag_updates.push((t.tag, addr));
                        for sh in shdrs.iter_mut().filter(|s| s.sh_addr == t.addr && s.sh_offset == t.off) {
                            sh.sh_offset = off;
                            sh.sh_addr = addr;
                        }
                    }
                }
            }
        }

        // .dynamic
        if let Some(d) = dynamic
            && (dyn_changed || dynamic_moves)
        {
            let mut entries = ed.dyns.clone();
            if let Some((addr, size)) = new_strtab {
                for e in entries.iter_mut() {
                    match e.tag {
                        DT_STRTAB => e.val = addr,
                        DT_STRSZ => e.val = size,
                        _ => {}
                    }
                }
            }
            for (tag, val) in &tag_updates {
                entries.iter_mut().filter(|e| e.tag == *tag).for_each(|e| e.val = *val);
            }
            let cap = if dynamic_moves { new_cap } else { d.capacity };
            let mut bytes = Vec::with_capacity((cap * esz) as usize);
            for e in &entries {
                e.encode(fmt, &mut bytes);
            }
            bytes.resize((cap * esz) as usize, 0);
            let old = phdrs[d.phdr_index];
            if let Some(pos) = dyn_pos {
                put(pos, &bytes);
                let size = cap * esz;
                let p = &mut phdrs[d.phdr_index];
                p.p_offset = seg_off + pos;
                p.p_vaddr = seg_vaddr + pos;
                p.p_paddr = seg_vaddr + pos;
                p.p_filesz = size;
                p.p_memsz = size;
                for sh in shdrs.iter_mut().filter(|s| {
                    s.sh_type == SHT_DYNAMIC
                        || (s.has_file_bytes() && s.sh_offset == old.p_offset && s.sh_flags & SHF_ALLOC != 0)
                }) {
                    sh.sh_offset = seg_off + pos;
                    sh.sh_addr = seg_vaddr + pos;
                    sh.sh_size = size;
                }
            } else {
                patches.push((old.p_offset, bytes));
            }
        }

        // Program headers.
        let load = Phdr {
            p_type: PT_LOAD,
            p_flags: if dynamic_moves { PF_R | PF_W } else { PF_R },
            p_offset: seg_off,
            p_vaddr: seg_vaddr,
            p_paddr: seg_vaddr,
            p_filesz: seg.len,
            p_memsz: seg.len,
            p_align: page_size,
        };
        let mut list: Vec<Phdr> = Vec::with_capacity(count);
        for (i, p) in phdrs.iter().enumerate() {
            list.push(*p);
            if add_load && Some(i) == last_load {
                list.push(load);
            }
        }
        if add_load && last_load.is_none() {
            list.push(load);
        }
        if let Some(flags) = ed.add_gnu_stack {
            list.push(Phdr { p_type: PT_GNU_STACK, p_flags: flags, p_align: 16, ..Phdr::default() });
        }
        let mut note_section: Option<Shdr> = None;
        if let (Some(note), Some(pos)) = (&ed.add_note, note_pos) {
            put(pos, note);
            let len = note.len() as u64;
            let (off, addr) = (seg_off + pos, seg_vaddr + pos);
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
        for _ in 0..nulls_to_drop {
            if let Some(i) = list.iter().rposition(|p| p.p_type == PT_NULL) {
                list.remove(i);
            }
        }
        let (phoff, ph_vaddr) = match pht_pos {
            Some(pos) => (seg_off + pos, seg_vaddr + pos),
            None => (elf.ehdr.e_phoff, self.pht_vaddr()),
        };
        let pht_size = list.len() as u64 * phsz;
        for p in list.iter_mut().filter(|p| p.p_type == PT_PHDR) {
            p.p_offset = phoff;
            p.p_vaddr = ph_vaddr;
            p.p_paddr = ph_vaddr;
            p.p_filesz = pht_size;
            p.p_memsz = pht_size;
        }
        if list != elf.phdrs {
            let mut bytes = Vec::with_capacity(pht_size as usize);
            for p in &list {
                p.encode(fmt, &mut bytes);
            }
            match pht_pos {
                Some(pos) => put(pos, &bytes),
                None => {
                    let old_size = old_n as u64 * phsz;
                    if (bytes.len() as u64) < old_size {
                        bytes.resize(old_size as usize, 0);
                    }
                    patches.push((phoff, bytes));
                }
            }
            if list.len() != old_n {
                let n = u16::try_from(list.len())
                    .map_err(|_| Error::Unsupported("too many program headers".into()))?;
                patches.push((Ehdr::phnum_offset(fmt), fmt.u16_bytes(n)));
            }
            if phoff != elf.ehdr.e_phoff {
                patches.push((Ehdr::phoff_offset(fmt), fmt.word_bytes(phoff)));
            }
        }

        let mut insert = Vec::new();
        if need_load {
            insert.resize((seg_off - file_len) as usize, 0);
            insert.extend_from_slice(&seg_bytes);
        }

        // Section headers. A table that ends the image moves behind the new segment when a payload follows, since
        // payload finders (AppImage's runtime) locate it by the end of the section header table.
        let shsz = fmt.shdr_size();
        let sht_end = elf.ehdr.e_shoff + self.shdrs.len() as u64 * shsz;
        // A new section (the resolution-cache note) needs a name in .shstrtab and a bigger table, both appended.
        if let (Some(mut sh), false) = (note_section, self.shdrs.is_empty()) {
            let strndx = usize::from(elf.ehdr.e_shstrndx);
            if let Some(strtab) = shdrs.get(strndx).copied() {
                let old = slice(data, strtab.sh_offset, strtab.sh_size, "section name table out of bounds")?;
                let mut needle = crate::ldcache::SECTION_NAME.to_vec();
                needle.push(0);
                match memchr::memmem::find(old, &needle) {
                    Some(pos) => sh.sh_name = pos as u32,
                    None => {
                        let mut table = old.to_vec();
                        sh.sh_name = table.len() as u32;
                        table.extend_from_slice(&needle);
                        let at = file_len + insert.len() as u64;
                        insert.extend_from_slice(&table);
                        shdrs[strndx].sh_offset = at;
                        shdrs[strndx].sh_size = table.len() as u64;
                    }
                }
            }
            shdrs.push(sh);
            let n = u16::try_from(shdrs.len()).map_err(|_| Error::Unsupported("too many sections".into()))?;
            patches.push((24 + 3 * fmt.word_size() + 12, fmt.u16_bytes(n)));
        }
        if (need_load && trailing && !self.shdrs.is_empty() && sht_end == file_len)
            || shdrs.len() != self.shdrs.len()
        {
            let new_shoff = align_up(file_len + insert.len() as u64, 8).unwrap_or(u64::MAX);
            insert.resize((new_shoff - file_len) as usize, 0);
            for sh in &shdrs {
                sh.encode(fmt, &mut insert);
            }
            let w = fmt.word_size();
            patches.push((24 + 2 * w, fmt.word_bytes(new_shoff)));
        } else {
            for (i, (new, old)) in shdrs.iter().zip(&self.shdrs).enumerate() {
                if new != old {
                    let mut bytes = Vec::new();
                    new.encode(fmt, &mut bytes);
                    patches.push((elf.ehdr.e_shoff + i as u64 * shsz, bytes));
                }
            }
        }
        early.extend(patches);
        Ok(Rewrite { patches: early, insert_at: file_len, insert })
    }

    /// The original bytes of a range with the editor's in-place patches applied.
    fn patched_view(&self, off: u64, size: u64) -> Result<Vec<u8>> {
        let mut v = slice(self.ed.elf.data, off, size, "table out of bounds")?.to_vec();
        for (p_off, bytes) in &self.ed.patches {
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
    fn movable_tables(&self) -> Vec<Table> {
        let elf = self.ed.elf;
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
            let sect = self
                .shdrs
                .iter()
                .find(|s| s.sh_addr == addr && s.sh_flags & SHF_ALLOC != 0 && s.has_file_bytes());
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
    fn dynstr_room(&self, off: u64, size: u64, grow: u64) -> Option<StrRoom> {
        let elf = self.ed.elf;
        let end = off + size;
        let load =
            elf.phdrs.iter().find(|p| p.p_type == PT_LOAD && p.p_offset <= off && end <= p.file_end())?;
        let tables: Vec<Table> = self
            .movable_tables()
            .into_iter()
            .filter(|t| t.off >= end && t.off + t.size <= load.file_end())
            .collect();
        let mut others: Vec<(u64, u64)> = Vec::new();
        for s in self.shdrs.iter().filter(|s| s.has_file_bytes()) {
            let r = (s.sh_offset, s.sh_offset.saturating_add(s.sh_size));
            if !tables.iter().any(|t| (t.off, t.off + t.size) == r) {
                others.push(r);
            }
        }
        for p in elf.phdrs.iter().filter(|p| p.p_filesz > 0 && p.p_type != PT_LOAD && p.p_type != PT_NULL) {
            others.push((p.p_offset, p.file_end()));
        }
        // Without section headers unknown bytes may be anything, so only short zero padding counts as free.
        let no_sections = self.shdrs.is_empty();
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

    /// The last LOAD, if it can simply grow: it ends the file, has no zero-filled tail, is not executable and lies
    /// above every other segment.
    fn extendable_load(&self) -> Option<usize> {
        let elf = self.ed.elf;
        let i = elf.phdrs.iter().rposition(|p| p.p_type == PT_LOAD)?;
        let p = elf.phdrs[i];
        let top = elf.phdrs.iter().filter(|q| q.p_type == PT_LOAD).map(|q| q.mem_end()).max()?;
        let ok = p.file_end() == self.image_end()
            && p.p_memsz == p.p_filesz
            && p.p_flags & PF_X == 0
            && p.mem_end() == top;
        ok.then_some(i)
    }

    /// End of the ELF image: the furthest byte any header, segment or section claims (the file's end at most).
    fn image_end(&self) -> u64 {
        let elf = self.ed.elf;
        let fmt = elf.fmt;
        let mut end = fmt.ehdr_size().max(elf.ehdr.e_phoff + elf.phdrs.len() as u64 * fmt.phdr_size());
        for p in &elf.phdrs {
            end = end.max(p.file_end());
        }
        for s in self.shdrs.iter().filter(|s| s.has_file_bytes()) {
            end = end.max(s.sh_offset.saturating_add(s.sh_size));
        }
        if !self.shdrs.is_empty() {
            end = end.max(elf.ehdr.e_shoff + self.shdrs.len() as u64 * fmt.shdr_size());
        }
        end.min(elf.data.len() as u64)
    }

    /// The virtual address of the program header table where it is now.
    fn pht_vaddr(&self) -> u64 {
        let elf = self.ed.elf;
        if let Some(p) = elf.phdrs.iter().find(|p| p.p_type == PT_PHDR) {
            return p.p_vaddr;
        }
        let off = elf.ehdr.e_phoff;
        elf.phdrs
            .iter()
            .find(|p| p.p_type == PT_LOAD && p.p_offset <= off && off < p.file_end())
            .map_or(0, |p| p.p_vaddr + (off - p.p_offset))
    }

    /// Whether the table can grow to end at `new_end` where it is, and what must move for it.
    fn grow_room(&self, new_end: u64, freed: &[(u64, u64)]) -> Option<Room> {
        let elf = self.ed.elf;
        let fmt = elf.fmt;
        let phoff = elf.ehdr.e_phoff;
        let old_end = phoff + elf.phdrs.len() as u64 * fmt.phdr_size();
        if new_end > self.image_end() {
            return None;
        }
        if let Some(load) =
            elf.phdrs.iter().find(|p| p.p_type == PT_LOAD && p.p_offset <= phoff && old_end <= p.file_end())
            && new_end > load.file_end()
        {
            return None;
        }
        let win = (old_end, new_end);
        if overlaps(win, (0, fmt.ehdr_size())) {
            return None;
        }
        let interp = elf
            .phdrs
            .iter()
            .find(|p| p.p_type == PT_INTERP && p.p_filesz > 0)
            .map(|p| (p.p_offset, p.file_end()));
        let mut units: Vec<(u64, u64)> = Vec::new();
        let mut notes: Vec<(u64, u64)> = elf
            .phdrs
            .iter()
            .filter(|p| (p.p_type == PT_NOTE || p.p_type == PT_GNU_PROPERTY) && p.p_filesz > 0)
            .map(|p| (p.p_offset, p.file_end()))
            .collect();
        notes.sort();
        for n in notes {
            match units.last_mut() {
                Some(last) if n.0 < last.1 => last.1 = last.1.max(n.1),
                _ => units.push(n),
            }
        }
        let mut blocked = vec![false; units.len()];
        let movable = |r: (u64, u64), units: &[(u64, u64)]| {
            interp.is_some_and(|i| contains(i, r))
                || units.iter().any(|u| contains(*u, r))
                || freed.iter().any(|f| contains(*f, r))
        };
        let mut fixed: Vec<(u64, u64)> = Vec::new();
        for sh in self.shdrs.iter().filter(|s| s.has_file_bytes()) {
            let r = (sh.sh_offset, sh.sh_offset.saturating_add(sh.sh_size));
            if !movable(r, &units) {
                fixed.push(r);
            }
        }
        for p in elf.phdrs.iter().filter(|p| p.p_filesz > 0) {
            if matches!(p.p_type, PT_LOAD | PT_PHDR | PT_INTERP | PT_NOTE | PT_GNU_PROPERTY | PT_NULL) {
                continue;
            }
            fixed.push((p.p_offset, p.file_end()));
        }
        if elf.ehdr.e_shnum > 0 {
            let shoff = elf.ehdr.e_shoff;
            fixed.push((shoff, shoff + u64::from(elf.ehdr.e_shnum) * fmt.shdr_size()));
        }
        for r in &fixed {
            if overlaps(*r, win) {
                return None;
            }
            for (u, b) in units.iter().zip(blocked.iter_mut()) {
                if overlaps(*r, *u) {
                    *b = true;
                }
            }
            if interp.is_some_and(|i| overlaps(i, *r)) && interp.is_some_and(|i| overlaps(i, win)) {
                return None;
            }
        }
        let mut in_way = Vec::new();
        for (u, b) in units.iter().zip(&blocked) {
            if overlaps(*u, win) {
                if *b {
                    return None;
                }
                in_way.push(*u);
            }
        }
        Some(Room { interp_in_way: interp.is_some_and(|i| overlaps(i, win)), units: in_way })
    }

    /// File offset and address of the new segment: after the file's end and above every segment, congruent modulo
    /// the page size. When the program headers (`pht`: their size and the loader's page size) move to its start,
    /// they avoid the zero-filled page tails of other segments, and in an executable the segment keeps the first
    /// LOAD's offset-to-address delta so kernels before 5.18 (which derive `AT_PHDR` from it) still report them right.
    fn place_segment(&self, len: u64, page: u64, pht: Option<(u64, u64)>) -> Result<(u64, u64)> {
        let elf = self.ed.elf;
        let overflow = || Error::Unsupported("new segment does not fit in the address space".into());
        let loads: Vec<&Phdr> = elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
        let first = loads.first().ok_or_else(|| Error::Unsupported("no loadable segment".into()))?;
        let max_end = loads.iter().map(|p| p.mem_end()).max().unwrap_or(0);
        let base = align_up(max_end, page).ok_or_else(overflow)?;
        let mut off = align_up(self.image_end(), 16).ok_or_else(overflow)?;
        let is_exec = elf.ehdr.e_type == ET_EXEC || elf.phdrs.iter().any(|p| p.p_type == PT_INTERP);
        let delta = first.p_vaddr.wrapping_sub(first.p_offset);
        let keep_delta = pht.is_some() && is_exec && delta % page == 0;
        if keep_delta {
            let want = base.saturating_sub(delta);
            if want > off && want - off <= 1 << 20 {
                off = align_up(want, 16).ok_or_else(overflow)?;
            }
        }
        if let Some((pht_len, runtime_page)) = pht {
            off = clear_of(off, pht_len, &zero_filled_tails(&elf.phdrs, runtime_page));
        }
        let vaddr = if keep_delta && off.wrapping_add(delta) >= base {
            off.wrapping_add(delta)
        } else {
            base.checked_add(off % page).ok_or_else(overflow)?
        };
        let limit = if elf.fmt.is64 { u64::MAX } else { u64::from(u32::MAX) };
        if vaddr.checked_add(len).is_none_or(|e| e > limit) || off.checked_add(len).is_none_or(|e| e > limit)
        {
            return Err(overflow());
        }
        Ok((off, vaddr))
    }
}

/// File ranges a loader shows as zeros although the file holds bytes there: after a LOAD with a zero-filled tail
/// (`p_memsz > p_filesz`, `.bss`), the rest of the page its file image ends in is cleared. glibc finds the program
/// headers of a library without `PT_PHDR` through the first LOAD whose mapped pages cover `e_phoff`; headers placed
/// in such a tail read as zeros there (no segments for `dl_iterate_phdr`, no unwind tables for C++ exceptions).
fn zero_filled_tails(phdrs: &[Phdr], page: u64) -> Vec<(u64, u64)> {
    phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > p.p_filesz)
        .filter_map(|p| {
            let end = p.file_end();
            let page_end = align_up(end, page.min(p.p_align.max(1)).max(1))?;
            (page_end > end).then_some((end, page_end))
        })
        .collect()
}

/// The first offset at or after `off` where `len` bytes overlap none of `ranges`.
fn clear_of(mut off: u64, len: u64, ranges: &[(u64, u64)]) -> u64 {
    while let Some(r) = ranges.iter().find(|r| overlaps(**r, (off, off.saturating_add(len.max(1))))) {
        off = align_up(r.1, 16).unwrap_or(u64::MAX);
    }
    off
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Options, RpathOp};
    use crate::testelf::{ALL_FORMATS, image};
    use crate::{Elf, rewrite_bytes};

    fn prints(data: &[u8]) -> String {
        let opts =
            Options { print_interpreter: true, print_rpath: true, print_needed: true, ..Options::default() };
        let mut out = Vec::new();
        rewrite_bytes(data, &opts, &mut out).expect("print");
        String::from_utf8(out).unwrap()
    }

    /// Invariants every rewrite must keep: congruent LOADs in address order, PT_DYNAMIC in a writable LOAD,
    /// PT_PHDR and PT_INTERP inside a LOAD.
    fn check_layout(data: &[u8]) {
        let elf = Elf::parse(data).expect("rewritten file parses");
        let loads: Vec<&Phdr> = elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
        for w in loads.windows(2) {
            assert!(w[0].mem_end() <= w[1].p_vaddr, "LOADs overlap or are out of order: {w:?}");
        }
        for l in &loads {
            assert_eq!(l.p_offset % l.p_align, l.p_vaddr % l.p_align, "LOAD not congruent: {l:?}");
            assert!(l.file_end() <= data.len() as u64);
        }
        let inside = |p: &Phdr, writable: bool| {
            loads.iter().any(|l| {
                l.p_vaddr <= p.p_vaddr
                    && p.mem_end() <= l.mem_end()
                    && p.p_offset - l.p_offset == p.p_vaddr - l.p_vaddr
                    && (!writable || l.p_flags & PF_W != 0)
            })
        };
        for p in &elf.phdrs {
            match p.p_type {
                PT_DYNAMIC => assert!(inside(p, true), "PT_DYNAMIC not in a writable LOAD"),
                PT_PHDR | PT_INTERP => assert!(inside(p, false), "{p:?} not in a LOAD"),
                _ => {}
            }
        }
    }

    #[test]
    fn prints_through_segments_in_every_class_and_byte_order() {
        for fmt in ALL_FORMATS {
            let data = image(fmt, 2);
            assert_eq!(prints(&data), "/lib/ld-test.so.1\n/old/rpath\nlibc.so.6\n", "{fmt:?}");
        }
    }

    #[test]
    fn many_edits_are_laid_out_once_in_every_format() {
        for fmt in ALL_FORMATS {
            for spare in [0, 3] {
                let data = image(fmt, spare);
                let mut opts = Options {
                    set_interpreter: Some(b"/a/much/longer/path/to/the/interpreter/ld-test.so.1".to_vec()),
                    rpath: Some(RpathOp::Set(b"/some/long/path/to/lib:/another/long/path/to/lib64".to_vec())),
                    clobber_old_sections: true,
                    ..Options::default()
                };
                opts.add_needed.insert(b"libextra.so.2".to_vec());
                opts.add_needed.insert(b"libtest.so".to_vec());
                let rw = rewrite_bytes(&data, &opts, &mut std::io::sink()).unwrap().expect("changed");
                let out = rw.apply(&data);
                check_layout(&out);
                assert_eq!(
                    prints(&out),
                    "/a/much/longer/path/to/the/interpreter/ld-test.so.1\n\
                     /some/long/path/to/lib:/another/long/path/to/lib64\nlibextra.so.2\nlibtest.so\nlibc.so.6\n",
                    "{fmt:?} spare {spare}"
                );
                let elf = Elf::parse(&out).unwrap();
                let loads = elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD).count();
                assert_eq!(loads, 3, "one new LOAD for every edit ({fmt:?})");
                assert!(
                    out.len() - data.len() < 1024,
                    "grew by {} ({fmt:?} spare {spare}) {:#x?}",
                    out.len() - data.len(),
                    elf.phdrs
                );
                // DT_RPATH became DT_RUNPATH, as patchelf does without --force-rpath.
                assert!(elf.dynamic.unwrap().entries.iter().any(|d| d.tag == DT_RUNPATH));
                // The old run path is no longer in the file.
                assert!(!out.windows(10).any(|w| w == b"/old/rpath"));
            }
        }
    }

    #[test]
    fn edits_that_fit_stay_in_place() {
        for fmt in ALL_FORMATS {
            let data = image(fmt, 2);
            let mut opts = Options { rpath: Some(RpathOp::Set(b"/new".to_vec())), ..Options::default() };
            opts.add_needed.insert(b"libtest.so".to_vec());
            opts.set_interpreter = Some(b"/lib/ld.so".to_vec());
            let rw = rewrite_bytes(&data, &opts, &mut std::io::sink()).unwrap().expect("changed");
            assert!(rw.insert.is_empty(), "nothing should need a new segment ({fmt:?})");
            let out = rw.apply(&data);
            assert_eq!(out.len(), data.len());
            check_layout(&out);
            assert_eq!(prints(&out), "/lib/ld.so\n/new\nlibtest.so\nlibc.so.6\n");
        }
    }

    #[test]
    fn no_op_edits_leave_the_file_identical() {
        let data = image(Fmt { is64: true, big: false }, 1);
        let opts = Options {
            set_interpreter: Some(b"/lib/ld-test.so.1".to_vec()),
            set_os_abi: Some("System V".into()),
            clear_execstack: true,
            ..Options::default()
        };
        assert_eq!(rewrite_bytes(&data, &opts, &mut std::io::sink()).unwrap(), None);
        let empty = Options { set_interpreter: Some(Vec::new()), ..Options::default() };
        assert_eq!(rewrite_bytes(&data, &empty, &mut std::io::sink()).unwrap(), None);
    }

    #[test]
    fn adding_gnu_stack_and_a_segment_grows_the_header_table() {
        for fmt in ALL_FORMATS {
            let mut data = image(fmt, 0);
            // Turn PT_GNU_STACK into PT_NULL so --set-execstack must add a header.
            let at = (fmt.ehdr_size() + 5 * fmt.phdr_size()) as usize;
            data[at..at + 4].copy_from_slice(&[0; 4]);
            // (Without --print-execstack: next to it, patchelf and we ignore --set-execstack.)
            let opts = Options {
                set_execstack: true,
                rpath: Some(RpathOp::Set(b"/a/rather/long/run/path/that/cannot/fit/in/place".to_vec())),
                ..Options::default()
            };
            let rw = rewrite_bytes(&data, &opts, &mut std::io::sink()).unwrap().expect("changed");
            let out = rw.apply(&data);
            check_layout(&out);
            let elf = Elf::parse(&out).unwrap();
            let stack = elf.phdrs.iter().find(|p| p.p_type == PT_GNU_STACK).expect("PT_GNU_STACK added");
            assert_eq!(stack.p_flags & PF_X, PF_X);
        }
    }

    fn load(offset: u64, filesz: u64, memsz: u64, align: u64) -> Phdr {
        Phdr {
            p_type: PT_LOAD,
            p_offset: offset,
            p_vaddr: offset + 0x1000,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: align,
            ..Phdr::default()
        }
    }

    #[test]
    fn only_segments_with_a_zero_filled_tail_hide_the_rest_of_their_page() {
        let phdrs = [
            load(0, 0x800, 0x800, 0x1000),        // no .bss: the page's rest shows file bytes
            load(0x1800, 0x900, 0x5000, 0x1000),  // .bss: 0x2100..0x3000 reads as zeros
            load(0x4000, 0x1000, 0x3000, 0x1000), // .bss, but the file image ends on a page boundary
            load(0x6010, 0x10, 0x20, 0x200000),   // 2 MiB alignment: only the loader's page counts
        ];
        assert_eq!(zero_filled_tails(&phdrs, 0x1000), vec![(0x2100, 0x3000), (0x6020, 0x7000)]);
        // A machine whose loader may use 64 KiB pages: the tail reaches to the segment's own alignment at most.
        assert_eq!(zero_filled_tails(&phdrs[1..2], 0x10000), vec![(0x2100, 0x3000)]);
        assert_eq!(
            zero_filled_tails(&[load(0x1800, 0x900, 0x5000, 0x10000)], 0x10000),
            vec![(0x2100, 0x10000)]
        );
    }

    #[test]
    fn a_moved_table_skips_zero_filled_tails() {
        let tails = [(0x2100, 0x3000), (0x3000, 0x3008)];
        assert_eq!(clear_of(0x2000, 0x100, &tails), 0x2000, "ends where the tail starts");
        assert_eq!(clear_of(0x2010, 0x100, &tails), 0x3010, "both tails skipped");
        assert_eq!(clear_of(0x2200, 0x38, &tails), 0x3010);
        assert_eq!(clear_of(0x4000, 0x38, &tails), 0x4000);
    }

    #[test]
    fn segment_builder_keeps_phases() {
        let mut s = SegmentBuilder::default();
        assert_eq!(s.reserve(3, 1, 0), 0);
        assert_eq!(s.reserve(8, 8, 0), 8);
        assert_eq!(s.reserve(4, 16, 0x338), 24);
        assert_eq!(s.reserve(1, 16, 0), 32);
    }
}
