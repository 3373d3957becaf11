//! Phase 2 of the layout: where new space goes, and where each moved table lands in it.
//!
//! A non-PIE executable gets whole pages right after its program header table (the LOAD holding the headers moves
//! down, as patchelf does), when the pages below that LOAD are free; everything else gets one segment after the end
//! of the image, for which the program header table grows in place or moves (see `rules` for both).

use super::Context;
use super::plan::Plan;
use super::rules::{self, MovedTable, SegmentBuilder, Shift, Surroundings};
use crate::error::{Error, Result};
use crate::raw::*;

/// The new space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Space {
    /// Everything fits where it is.
    None,
    /// A segment after the end of the image: a new LOAD, or `extend`ing the last one.
    Append { extend: Option<usize> },
    /// Pages opened after the program header table; see [`Shift`].
    Shift(Shift),
}

/// Where everything goes. Positions are relative to `origin`, the output file offset and address of new space.
#[derive(Debug)]
pub(super) struct Placement {
    pub space: Space,
    pub origin: (u64, u64),
    /// Bytes of new space used.
    pub len: u64,
    /// Whether the new space holds `.dynamic` (so it must be writable).
    pub writable: bool,
    /// Number of program headers in the end, and how many `PT_NULL` entries go to make that number.
    pub count: usize,
    pub nulls_to_drop: usize,
    /// Position of the program header table, when it moves.
    pub pht: Option<u64>,
    /// Whether a new LOAD entry maps the appended segment.
    pub add_load: bool,
    /// `.interp` moving, with its (new or old) bytes.
    pub interp: Option<(u64, Vec<u8>)>,
    /// Note ranges moving to make room for the program header table, with their positions.
    pub units: Vec<((u64, u64), u64)>,
    pub dynamic: Option<u64>,
    pub note: Option<u64>,
    pub table: Option<u64>,
    pub dynstr: Option<u64>,
}

impl Placement {
    fn nothing(count: usize) -> Placement {
        Placement {
            space: Space::None,
            origin: (0, 0),
            len: 0,
            writable: false,
            count,
            nulls_to_drop: 0,
            pht: None,
            add_load: false,
            interp: None,
            units: Vec::new(),
            dynamic: None,
            note: None,
            table: None,
            dynstr: None,
        }
    }

    /// The output offset of input offset `off`: bytes after an insertion point move by its length.
    pub fn output_offset(&self, cx: &Context<'_, '_, '_>, off: u64) -> u64 {
        match self.space {
            Space::Shift(s) if off >= cx.pht_end => off + s.gap,
            _ => off,
        }
    }

    /// One line for `--debug`.
    pub fn describe(&self) -> String {
        let space = match self.space {
            Space::None => "none".to_string(),
            Space::Append { extend: Some(i) } => format!("the last LOAD (#{i}) grows"),
            Space::Append { extend: None } => "a new LOAD after the image".to_string(),
            Space::Shift(s) => {
                format!("{} bytes after the program headers, LOAD #{} moves down", s.gap, s.header)
            }
        };
        format!(
            "new space: {space} at offset 0x{:x}, address 0x{:x}, {} bytes used; program headers {}, {} entries; \
             moving: interp {}, {} note range(s), dynamic {}, dynstr {}, a table {}",
            self.origin.0,
            self.origin.1,
            self.len,
            if self.pht.is_some() { "move" } else { "stay" },
            self.count,
            self.interp.is_some(),
            self.units.len(),
            self.dynamic.is_some(),
            self.dynstr.is_some(),
            self.table.is_some(),
        )
    }
}

pub(super) fn place(cx: &Context<'_, '_, '_>, plan: &Plan) -> Result<Placement> {
    let nonnull = plan.phdrs.iter().filter(|p| p.p_type != PT_NULL).count();
    let added = usize::from(plan.add_stack.is_some()) + usize::from(plan.add_note.is_some());
    if !plan.needs_space() && nonnull + added <= plan.phdrs.len() {
        let (count, nulls) = header_count(plan, 0);
        return Ok(Placement { nulls_to_drop: nulls, ..Placement::nothing(count) });
    }
    // New space goes above every LOAD's memory image; one that maps more of the file than its memory size is
    // damaged (the ELF specification forbids it), and space placed after it could be mapped over.
    if plan.phdrs.iter().any(|p| p.p_type == PT_LOAD && p.p_filesz > p.p_memsz) {
        return Err(Error::Unsupported(
            "a loadable segment's file size exceeds its memory size; the file is damaged".into(),
        ));
    }
    if cx.elf.ehdr.e_type == ET_EXEC
        && let Some(p) = shift(cx, plan)
    {
        return Ok(p);
    }
    append(cx, plan)
}

/// The final number of program headers with `extra` new LOADs, and how many `PT_NULL` entries are dropped to keep
/// the table at its old size where possible.
fn header_count(plan: &Plan, extra: usize) -> (usize, usize) {
    let old_n = plan.phdrs.len();
    let nulls = old_n - plan.phdrs.iter().filter(|p| p.p_type != PT_NULL).count();
    let count = old_n + extra + usize::from(plan.add_stack.is_some()) + usize::from(plan.add_note.is_some());
    let drop = count.saturating_sub(old_n).min(nulls);
    (count - drop, drop)
}

/// Reserves the moved tables in `seg`, in a fixed order.
fn reserve_tables(cx: &Context<'_, '_, '_>, plan: &Plan, seg: &mut SegmentBuilder, p: &mut Placement) {
    if let Some(d) = plan.dynamic.as_ref().filter(|d| d.moves) {
        p.dynamic = Some(seg.reserve(d.capacity * cx.fmt.dyn_size(), cx.fmt.word_size(), 0));
    }
    p.units = p.units.iter().map(|(u, _)| (*u, seg.reserve(u.1 - u.0, 16, u.0))).collect();
    if let Some((pos, bytes)) = &mut p.interp {
        *pos = seg.reserve(bytes.len() as u64, 1, 0);
    }
    if let Some(n) = &plan.add_note {
        p.note = Some(seg.reserve(n.len() as u64, 4, 0));
    }
    if let Some(t) = plan.moved_table() {
        p.table = Some(seg.reserve(t.size, t.align, t.off));
    }
    if let Some(s) = plan.dynstr.as_ref().filter(|_| plan.dynstr_moves()) {
        p.dynstr = Some(seg.reserve(s.table.len() as u64, 1, 0));
    }
    p.writable = plan.dynamic_moves();
}

/// An executable's new space as pages opened after its program header table, if the pages below the LOAD that
/// holds the headers are free: the table grows in place and every moved table goes right behind it.
fn shift(cx: &Context<'_, '_, '_>, plan: &Plan) -> Option<Placement> {
    // Everything behind the new pages moves in the file: only for a file whose segments and sections are in it.
    let len = cx.elf.data.len() as u64;
    if plan.phdrs.iter().any(|p| p.p_filesz > 0 && p.file_end() > len)
        || cx.shdrs.iter().any(|s| s.has_file_bytes() && s.sh_offset.saturating_add(s.sh_size) > len)
    {
        return None;
    }
    let header =
        plan.phdrs.iter().find(|p| p.p_type == PT_LOAD && p.p_offset == 0 && p.file_end() >= cx.pht_end)?;
    // The LOAD is split where the new pages go in, unless it ends with the headers.
    let split = header.file_end() > cx.pht_end;
    let (count, nulls) = header_count(plan, usize::from(split));
    let mut seg = SegmentBuilder::at(cx.pht_end);
    let new_pht_end = cx.elf.ehdr.e_phoff + count as u64 * cx.phdr_size;
    seg.reserve(new_pht_end.saturating_sub(cx.pht_end), 1, 0);
    let mut p = Placement { count, nulls_to_drop: nulls, ..Placement::nothing(count) };
    if let Some(i) = plan.interp.as_ref().filter(|i| !i.fits) {
        p.interp = Some((0, i.bytes.clone()));
    }
    reserve_tables(cx, plan, &mut seg, &mut p);
    let s = rules::shift_room(&plan.phdrs, cx.pht_end, cx.pht_end + seg.len, cx.page)?;
    let base = plan.phdrs[s.header].p_vaddr - s.gap;
    Some(Placement { space: Space::Shift(s), origin: (cx.pht_end, base + cx.pht_end), len: seg.len, ..p })
}

/// New space as a segment after the end of the image.
fn append(cx: &Context<'_, '_, '_>, plan: &Plan) -> Result<Placement> {
    let elf = cx.elf;
    let sur = Surroundings {
        phdrs: &elf.phdrs,
        shdrs: &cx.shdrs,
        phoff: elf.ehdr.e_phoff,
        ehdr_size: cx.fmt.ehdr_size(),
        phdr_size: cx.phdr_size,
        sht: (!cx.shdrs.is_empty())
            .then(|| (elf.ehdr.e_shoff, elf.ehdr.e_shoff + cx.shdrs.len() as u64 * cx.fmt.shdr_size())),
        image_end: cx.image_end,
    };
    let new_interp = plan.interp.as_ref();
    let mut interp_moves = new_interp.is_some_and(|i| !i.fits);
    let extend = rules::extendable_load(&elf.phdrs, cx.image_end);
    let nonnull = plan.phdrs.iter().filter(|p| p.p_type != PT_NULL).count();
    let old_n = plan.phdrs.len();
    let needs = plan.needs_space();
    // A .dynstr that moves anyway leaves its old bytes free for the table to grow over.
    let freed: Vec<(u64, u64)> = plan
        .dynstr
        .as_ref()
        .filter(|_| plan.dynstr_moves())
        .map(|s| (s.off, s.off + s.size))
        .into_iter()
        .collect();
    let mut units: Vec<(u64, u64)> = Vec::new();
    let mut pht_moves = false;
    let mut settled = false;
    // Growing the table may need a new segment (for what moves out of its way), which needs an entry: iterate.
    for _ in 0..8 {
        let need_load = needs || interp_moves || !units.is_empty() || pht_moves;
        let count = nonnull
            + usize::from(need_load && extend.is_none())
            + usize::from(plan.add_stack.is_some())
            + usize::from(plan.add_note.is_some());
        if count <= old_n || pht_moves {
            settled = true;
            break;
        }
        let new_end = elf.ehdr.e_phoff + count as u64 * cx.phdr_size;
        match rules::pht_room(&sur, new_end, &freed) {
            Some(room) => {
                interp_moves |= room.interp_in_way;
                units = room.units;
                if (needs || interp_moves || !units.is_empty()) == need_load {
                    settled = true;
                    break;
                }
            }
            None => pht_moves = true,
        }
    }
    if !settled || pht_moves {
        // Moving the table itself frees its neighbours; nothing else needs to move for its sake.
        pht_moves = true;
        units.clear();
        interp_moves = new_interp.is_some_and(|i| !i.fits);
    }
    if !(needs || interp_moves || pht_moves || !units.is_empty()) {
        // The table grows in place and nothing else moves.
        let (count, nulls) = header_count(plan, 0);
        return Ok(Placement { nulls_to_drop: nulls, ..Placement::nothing(count) });
    }
    let add_load = extend.is_none();
    let (count, nulls) = header_count(plan, usize::from(add_load));
    let mut seg = SegmentBuilder::default();
    let mut p = Placement { count, nulls_to_drop: nulls, add_load, ..Placement::nothing(count) };
    if pht_moves {
        p.pht = Some(seg.reserve(count as u64 * cx.phdr_size, 8, 0));
    }
    p.units = units.into_iter().map(|u| (u, 0)).collect();
    if interp_moves {
        let bytes = match new_interp {
            Some(i) => i.bytes.clone(),
            None => {
                let old = elf.phdrs.iter().find(|p| p.p_type == PT_INTERP).ok_or_else(Error::no_interp)?;
                slice(elf.data, old.p_offset, old.p_filesz, "interpreter out of bounds")?.to_vec()
            }
        };
        p.interp = Some((0, bytes));
    }
    reserve_tables(cx, plan, &mut seg, &mut p);
    let overflow = || Error::Unsupported("new segment does not fit in the address space".into());
    let pht = p.pht.map(|_| MovedTable { len: count as u64 * cx.phdr_size, runtime_page: cx.runtime_page });
    let origin = match extend {
        Some(i) => {
            let last = elf.phdrs[i];
            let mut off = align_up(cx.image_end, 16).ok_or_else(overflow)?;
            if let Some(t) = pht {
                off = rules::clear_of(off, t.len, &rules::zero_filled_tails(&elf.phdrs, t.runtime_page));
            }
            let vaddr = last.p_vaddr.checked_add(off - last.p_offset).ok_or_else(overflow)?;
            let limit = if cx.fmt.is64 { u64::MAX } else { u64::from(u32::MAX) };
            if vaddr.checked_add(seg.len).is_none_or(|e| e > limit) {
                return Err(overflow());
            }
            (off, vaddr)
        }
        None => {
            if !elf.phdrs.iter().any(|p| p.p_type == PT_LOAD) {
                return Err(Error::Unsupported("no loadable segment".into()));
            }
            let is_exec = elf.ehdr.e_type == ET_EXEC || elf.phdrs.iter().any(|p| p.p_type == PT_INTERP);
            rules::new_segment(&elf.phdrs, cx.image_end, seg.len, cx.seg_align, pht, is_exec, cx.fmt.is64)
                .ok_or_else(overflow)?
        }
    };
    Ok(Placement { space: Space::Append { extend }, origin, len: seg.len, ..p })
}
