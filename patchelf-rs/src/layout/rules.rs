//! The placement rules, written once: where a moved table may go and which segment covers what. Pure functions
//! of headers and offsets, so each is unit-tested on its own; `plan.rs` and `place.rs` apply them.
//!
//! The loaders they answer to: the kernel maps an executable's LOADs and tells the program where its headers are
//! (`AT_PHDR`: from `PT_PHDR` since 5.18, before that from the first LOAD's offset-to-address delta); glibc maps a
//! library's LOADs page by page and finds its headers through `PT_PHDR`, or else through the first LOAD whose mapped
//! pages cover `e_phoff`; both clear the rest of the page after a LOAD's file image when the LOAD has a `.bss`.

use crate::raw::*;

pub(super) fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

pub(super) fn contains(outer: (u64, u64), inner: (u64, u64)) -> bool {
    outer.0 <= inner.0 && inner.1 <= outer.1
}

/// Bump allocator for new space: positions relative to `base`, aligned in absolute terms (`base + pos`).
#[derive(Debug, Default)]
pub(super) struct SegmentBuilder {
    pub base: u64,
    pub len: u64,
}

impl SegmentBuilder {
    pub fn at(base: u64) -> SegmentBuilder {
        SegmentBuilder { base, len: 0 }
    }

    /// Reserves `size` bytes at a position whose absolute offset is `≡ phase (mod align)`.
    pub fn reserve(&mut self, size: u64, align: u64, phase: u64) -> u64 {
        let align = align.max(1);
        let here = self.base + self.len;
        let mut at = here / align * align + phase % align;
        if at < here {
            at += align;
        }
        let pos = at - self.base;
        self.len = pos + size;
        pos
    }
}

/// File ranges a loader shows as zeros although the file holds bytes there: after a LOAD with a zero-filled tail
/// (`p_memsz > p_filesz`, `.bss`), the rest of the page its file image ends in is cleared. glibc finds the program
/// headers of a library without `PT_PHDR` through the first LOAD whose mapped pages cover `e_phoff`; headers placed
/// in such a tail read as zeros there (no segments for `dl_iterate_phdr`, no unwind tables for C++ exceptions).
pub(super) fn zero_filled_tails(phdrs: &[Phdr], page: u64) -> Vec<(u64, u64)> {
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
pub(super) fn clear_of(mut off: u64, len: u64, ranges: &[(u64, u64)]) -> u64 {
    while let Some(r) = ranges.iter().find(|r| overlaps(**r, (off, off.saturating_add(len.max(1))))) {
        off = align_up(r.1, 16).unwrap_or(u64::MAX);
    }
    off
}

/// The LOAD whose file image holds `[start, end)`.
pub(super) fn covering_load(phdrs: &[Phdr], start: u64, end: u64) -> Option<usize> {
    phdrs.iter().position(|p| p.p_type == PT_LOAD && p.p_offset <= start && end <= p.file_end())
}

/// The address at which a LOAD maps file offset `off`, if one does.
pub(super) fn address_of(phdrs: &[Phdr], off: u64) -> Option<u64> {
    phdrs
        .iter()
        .find(|p| {
            p.p_type == PT_LOAD && p.p_offset <= off && off < p.file_end().max(p.p_offset.saturating_add(1))
        })
        .map(|p| p.p_vaddr.wrapping_add(off - p.p_offset))
}

/// The last LOAD, if new bytes at the image's end can simply extend it: it ends the image, has no zero-filled tail,
/// is not executable and lies above every other segment. Growing a LOAD we added before keeps repeated calls from
/// adding one LOAD each.
pub(super) fn extendable_load(phdrs: &[Phdr], image_end: u64) -> Option<usize> {
    let i = phdrs.iter().rposition(|p| p.p_type == PT_LOAD)?;
    let p = phdrs[i];
    let top = phdrs.iter().filter(|q| q.p_type == PT_LOAD).map(|q| q.mem_end()).max()?;
    let ok =
        p.file_end() == image_end && p.p_memsz == p.p_filesz && p.p_flags & PF_X == 0 && p.mem_end() == top;
    ok.then_some(i)
}

/// Where the program headers move when they need a new place at the image's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MovedTable {
    /// Their size, and the largest page the machine's loaders use.
    pub len: u64,
    pub runtime_page: u64,
}

/// File offset and address of a new segment of `len` bytes for an image ending at `image_end`: after it and above
/// every LOAD, `p_offset ≡ p_vaddr (mod align)` without padding the file to a page. When the program headers move to
/// its start (`pht`), they avoid the zero-filled page tails of other LOADs, and in an executable the segment keeps
/// the first LOAD's offset-to-address delta where that costs at most 1 MiB, so kernels before 5.18 report `AT_PHDR`
/// right.
pub(super) fn new_segment(
    phdrs: &[Phdr],
    image_end: u64,
    len: u64,
    align: u64,
    pht: Option<MovedTable>,
    is_exec: bool,
    is64: bool,
) -> Option<(u64, u64)> {
    let loads: Vec<&Phdr> = phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
    let first = loads.first()?;
    let max_end = loads.iter().map(|p| p.mem_end()).max().unwrap_or(0);
    let base = align_up(max_end, align)?;
    let mut off = align_up(image_end, 16)?;
    let delta = first.p_vaddr.wrapping_sub(first.p_offset);
    let keep_delta = pht.is_some() && is_exec && delta % align == 0;
    if keep_delta {
        let want = base.saturating_sub(delta);
        if want > off && want - off <= 1 << 20 {
            off = align_up(want, 16)?;
        }
    }
    if let Some(t) = pht {
        off = clear_of(off, t.len, &zero_filled_tails(phdrs, t.runtime_page));
    }
    let vaddr = if keep_delta && off.wrapping_add(delta) >= base {
        off.wrapping_add(delta)
    } else {
        base.checked_add(off % align)?
    };
    let limit = if is64 { u64::MAX } else { u64::from(u32::MAX) };
    if vaddr.checked_add(len).is_none_or(|e| e > limit) || off.checked_add(len).is_none_or(|e| e > limit) {
        return None;
    }
    Some((off, vaddr))
}

/// Opening space right after the program header table of an executable by moving the LOAD that holds the headers
/// down in memory, as patchelf does for `ET_EXEC`: `gap` bytes (whole pages) are inserted into the file at
/// `pht_end`; the part of that LOAD before them becomes its own LOAD `gap` lower in memory, the rest keeps its
/// addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shift {
    /// Index of the LOAD holding the ELF header and the program headers.
    pub header: usize,
    pub gap: u64,
}

/// Whether the headers' LOAD can move `used_end` bytes' worth of pages down: it starts the file and holds the
/// program header table, starts on a page, and nothing is mapped in the pages below it.
pub(super) fn shift_room(phdrs: &[Phdr], pht_end: u64, used_end: u64, page: u64) -> Option<Shift> {
    let header =
        phdrs.iter().position(|p| p.p_type == PT_LOAD && p.p_offset == 0 && p.file_end() >= pht_end)?;
    let base = phdrs[header].p_vaddr;
    let gap = align_up(used_end, page)?;
    if page == 0 || !base.is_multiple_of(page) || base < gap {
        return None;
    }
    let below = (base - gap, base);
    let clash = phdrs.iter().enumerate().any(|(i, p)| {
        i != header
            && p.p_type == PT_LOAD
            && overlaps(below, (p.p_vaddr, p.mem_end().max(p.p_vaddr.saturating_add(1))))
    });
    (!clash).then_some(Shift { header, gap })
}

/// A LOAD's alignment after its file offset moved: kept while the offset stays congruent to the address modulo it,
/// else the page (the loaders need congruence modulo their page only).
pub(super) fn realigned(p: &Phdr, page: u64) -> u64 {
    if p.p_align > 1 && !p.p_vaddr.wrapping_sub(p.p_offset).is_multiple_of(p.p_align) {
        page
    } else {
        p.p_align
    }
}

/// What lies around the program header table, for [`pht_room`].
#[derive(Debug)]
pub(super) struct Surroundings<'s> {
    pub phdrs: &'s [Phdr],
    pub shdrs: &'s [Shdr],
    pub phoff: u64,
    pub ehdr_size: u64,
    pub phdr_size: u64,
    /// The section header table's file range, if the file has one.
    pub sht: Option<(u64, u64)>,
    pub image_end: u64,
}

/// What must leave to let the program header table grow where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Room {
    pub interp_in_way: bool,
    /// Note ranges (merged `PT_NOTE`/`PT_GNU_PROPERTY` extents) in the way.
    pub units: Vec<(u64, u64)>,
}

/// Whether the program header table can grow in place to end at `new_end`: the bytes it grows over may only be
/// `.interp`, notes (whole, and only if nothing else shares their bytes) or `freed` ranges (a table that moves
/// anyway), and it must stay inside the LOAD that maps it.
pub(super) fn pht_room(s: &Surroundings<'_>, new_end: u64, freed: &[(u64, u64)]) -> Option<Room> {
    let old_end = s.phoff + s.phdrs.len() as u64 * s.phdr_size;
    if new_end > s.image_end {
        return None;
    }
    if let Some(i) = covering_load(s.phdrs, s.phoff, old_end)
        && new_end > s.phdrs[i].file_end()
    {
        return None;
    }
    let win = (old_end, new_end);
    if overlaps(win, (0, s.ehdr_size)) {
        return None;
    }
    let interp =
        s.phdrs.iter().find(|p| p.p_type == PT_INTERP && p.p_filesz > 0).map(|p| (p.p_offset, p.file_end()));
    let mut units: Vec<(u64, u64)> = Vec::new();
    let mut notes: Vec<(u64, u64)> = s
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
    let movable = |r: (u64, u64)| {
        interp.is_some_and(|i| contains(i, r))
            || units.iter().any(|u| contains(*u, r))
            || freed.iter().any(|f| contains(*f, r))
    };
    let mut fixed: Vec<(u64, u64)> = Vec::new();
    for sh in s.shdrs.iter().filter(|s| s.has_file_bytes()) {
        let r = (sh.sh_offset, sh.sh_offset.saturating_add(sh.sh_size));
        if !movable(r) {
            fixed.push(r);
        }
    }
    for p in s.phdrs.iter().filter(|p| p.p_filesz > 0) {
        if !matches!(p.p_type, PT_LOAD | PT_PHDR | PT_INTERP | PT_NOTE | PT_GNU_PROPERTY | PT_NULL) {
            fixed.push((p.p_offset, p.file_end()));
        }
    }
    fixed.extend(s.sht);
    let mut blocked = vec![false; units.len()];
    for r in &fixed {
        if overlaps(*r, win) {
            return None;
        }
        for (u, b) in units.iter().zip(blocked.iter_mut()) {
            if overlaps(*r, *u) {
                *b = true;
            }
        }
        if interp.is_some_and(|i| overlaps(i, *r) && overlaps(i, win)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(offset: u64, vaddr: u64, filesz: u64, memsz: u64, align: u64) -> Phdr {
        Phdr {
            p_type: PT_LOAD,
            p_flags: PF_R,
            p_offset: offset,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            p_align: align,
        }
    }

    #[test]
    fn segment_builder_keeps_phases() {
        let mut s = SegmentBuilder::default();
        assert_eq!(s.reserve(3, 1, 0), 0);
        assert_eq!(s.reserve(8, 8, 0), 8);
        assert_eq!(s.reserve(4, 16, 0x338), 24);
        assert_eq!(s.reserve(1, 16, 0), 32);
        // Alignment is absolute: a region starting at 0x34 puts an 8-aligned table at 0x38.
        let mut s = SegmentBuilder::at(0x34);
        assert_eq!(s.reserve(4, 1, 0), 0);
        assert_eq!(s.reserve(8, 8, 0), 4);
    }

    #[test]
    fn only_segments_with_a_zero_filled_tail_hide_the_rest_of_their_page() {
        let phdrs = [
            load(0, 0x1000, 0x800, 0x800, 0x1000), // no .bss: the page's rest shows file bytes
            load(0x1800, 0x2800, 0x900, 0x5000, 0x1000), // .bss: 0x2100..0x3000 reads as zeros
            load(0x4000, 0x8000, 0x1000, 0x3000, 0x1000), // .bss, but the file image ends on a page boundary
            load(0x6010, 0x206010, 0x10, 0x20, 0x200000), // 2 MiB alignment: only the loader's page counts
        ];
        assert_eq!(zero_filled_tails(&phdrs, 0x1000), vec![(0x2100, 0x3000), (0x6020, 0x7000)]);
        // A machine whose loader may use 64 KiB pages: the tail reaches to the segment's own alignment at most.
        assert_eq!(zero_filled_tails(&phdrs[1..2], 0x10000), vec![(0x2100, 0x3000)]);
        let big = [load(0x1800, 0x11800, 0x900, 0x5000, 0x10000)];
        assert_eq!(zero_filled_tails(&big, 0x10000), vec![(0x2100, 0x10000)]);
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
    fn covering_and_addresses() {
        let phdrs = [load(0, 0x400000, 0x800, 0x800, 0x1000), load(0x1000, 0x401000, 0x100, 0x100, 0x1000)];
        assert_eq!(covering_load(&phdrs, 0x40, 0x318), Some(0));
        assert_eq!(
            covering_load(&phdrs, 0x7f0, 0x810),
            None,
            "crosses the end of the first LOAD's file image"
        );
        assert_eq!(covering_load(&phdrs, 0x1000, 0x1100), Some(1));
        assert_eq!(address_of(&phdrs, 0x40), Some(0x400040));
        assert_eq!(address_of(&phdrs, 0x900), None);
    }

    #[test]
    fn only_a_plain_last_load_at_the_end_grows() {
        let rw = Phdr { p_flags: PF_R | PF_W, ..load(0x3000, 0x13000, 0x200, 0x200, 0x1000) };
        let phdrs = [load(0, 0x10000, 0x800, 0x800, 0x1000), rw];
        assert_eq!(extendable_load(&phdrs, 0x3200), Some(1));
        assert_eq!(extendable_load(&phdrs, 0x3300), None, "something follows it in the file");
        let bss = [phdrs[0], Phdr { p_memsz: 0x400, ..rw }];
        assert_eq!(extendable_load(&bss, 0x3200), None, "a .bss would be overwritten");
        let exec = [phdrs[0], Phdr { p_flags: PF_R | PF_X, ..rw }];
        assert_eq!(extendable_load(&exec, 0x3200), None);
    }

    #[test]
    fn a_new_segment_lies_above_everything_congruent_to_its_offset() {
        let phdrs = [load(0, 0x10000, 0x800, 0x800, 0x1000), load(0x1800, 0x12800, 0x100, 0x3000, 0x1000)];
        // After the image, above the highest address, offset ≡ address (mod the alignment).
        let (off, vaddr) = new_segment(&phdrs, 0x2005, 0x40, 0x1000, None, false, true).unwrap();
        assert_eq!((off, vaddr), (0x2010, 0x16010));
        // Program headers moving there skip the .bss tail of the second LOAD's last page.
        let t = MovedTable { len: 0x38 * 4, runtime_page: 0x1000 };
        let (off, vaddr) = new_segment(&phdrs, 0x1905, 0x100, 0x1000, Some(t), false, true).unwrap();
        assert_eq!((off, vaddr), (0x2000, 0x16000));
        // An executable keeps the first LOAD's delta (0x10000) when that costs little padding.
        let (off, vaddr) = new_segment(&phdrs, 0x2005, 0x100, 0x1000, Some(t), true, true).unwrap();
        assert_eq!(vaddr - off, 0x10000);
        assert!(vaddr >= 0x16000);
        // 32-bit: nothing beyond 4 GiB.
        let high = [load(0, 0xffff_f000, 0x800, 0x800, 0x1000)];
        assert_eq!(new_segment(&high, 0x800, 0x2000, 0x1000, None, false, false), None);
    }

    #[test]
    fn the_header_load_moves_down_only_into_free_pages() {
        let phdrs = [load(0, 0x400000, 0x570, 0x570, 0x1000), load(0x1000, 0x401000, 0x200, 0x200, 0x1000)];
        assert_eq!(shift_room(&phdrs, 0x318, 0x700, 0x1000), Some(Shift { header: 0, gap: 0x1000 }));
        assert_eq!(shift_room(&phdrs, 0x318, 0x1001, 0x1000), Some(Shift { header: 0, gap: 0x2000 }));
        assert_eq!(shift_room(&phdrs, 0x318, 0x700, 0x2000), Some(Shift { header: 0, gap: 0x2000 }));
        // Something mapped just below: no room.
        let below = [phdrs[0], phdrs[1], load(0x2000, 0x3ff000, 0x10, 0x10, 0x1000)];
        assert_eq!(shift_room(&below, 0x318, 0x700, 0x1000), None);
        // Address 0 (or below the gap), or the headers not at the start of a LOAD: no room.
        let low = [load(0, 0, 0x570, 0x570, 0x1000)];
        assert_eq!(shift_room(&low, 0x318, 0x700, 0x1000), None);
        let late = [load(0x1000, 0x401000, 0x570, 0x570, 0x1000)];
        assert_eq!(shift_room(&late, 0x318, 0x700, 0x1000), None);
    }

    #[test]
    fn moved_loads_keep_their_alignment_while_congruent() {
        let p = load(0x3000, 0x401000, 0x10, 0x10, 0x1000);
        assert_eq!(realigned(&p, 0x1000), 0x1000);
        let big = load(0x3000, 0x401000, 0x10, 0x10, 0x200000);
        assert_eq!(realigned(&big, 0x1000), 0x1000);
        let ok = load(0x201000, 0x401000, 0x10, 0x10, 0x200000);
        assert_eq!(realigned(&ok, 0x1000), 0x200000);
    }

    #[test]
    fn the_header_table_grows_over_interp_and_notes_only() {
        let phdrs = [
            Phdr { p_type: PT_PHDR, p_offset: 0x40, p_filesz: 0xe0, ..Phdr::default() },
            Phdr { p_type: PT_INTERP, p_offset: 0x120, p_filesz: 0x1c, ..Phdr::default() },
            Phdr { p_type: PT_NOTE, p_offset: 0x140, p_filesz: 0x20, ..Phdr::default() },
            load(0, 0x10000, 0x800, 0x800, 0x1000),
        ];
        let sect =
            |off: u64, size: u64| Shdr { sh_type: 1, sh_offset: off, sh_size: size, ..Shdr::default() };
        let shdrs = [sect(0x120, 0x1c), sect(0x140, 0x20), sect(0x160, 0x100)];
        let s = Surroundings {
            phdrs: &phdrs,
            shdrs: &shdrs,
            phoff: 0x40,
            ehdr_size: 0x40,
            phdr_size: 0x38,
            sht: Some((0x900, 0xa00)),
            image_end: 0xa00,
        };
        // One more entry (to 0x158): over .interp and the note, both must move.
        assert_eq!(pht_room(&s, 0x158, &[]), Some(Room { interp_in_way: true, units: vec![(0x140, 0x160)] }));
        // Past the note into a fixed section: no room, unless that section moves anyway.
        assert_eq!(pht_room(&s, 0x190, &[]), None);
        assert_eq!(
            pht_room(&s, 0x190, &[(0x160, 0x260)]),
            Some(Room { interp_in_way: true, units: vec![(0x140, 0x160)] })
        );
        // Beyond the LOAD holding the table: no room.
        assert_eq!(pht_room(&s, 0x900, &[(0x160, 0x900)]), None);
    }
}
