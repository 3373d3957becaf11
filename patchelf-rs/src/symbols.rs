//! `--rename-dynamic-symbols`: renames `.dynsym` entries and rebuilds `.hash` and `.gnu.hash` in place.
//!
//! New names go through the editor's `.dynstr` (so the table may move, as any string edit). `.gnu.hash` requires
//! the hashed symbols ordered by bucket; when new names change that order, the symbols are permuted and every
//! index into `.dynsym` that the dynamic segment reaches (`.gnu.version`, `DT_REL`/`DT_RELA`/`DT_JMPREL`) is
//! remapped. All tables keep their size, so this adds no layout work beyond `.dynstr`.

use std::collections::BTreeMap;
use std::io::Write;

use crate::edit::Editor;
use crate::error::{Error, Malformed, Result};
use crate::raw::*;

/// The classic System V ELF hash.
pub fn sysv_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// The GNU hash (Bernstein's, seeded with 5381).
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(u32::from(c)))
}

pub(crate) fn rename(
    ed: &mut Editor<'_, '_>,
    map: &BTreeMap<Vec<u8>, Vec<u8>>,
    log: &mut dyn Write,
) -> Result<()> {
    let elf = ed.elf;
    let fmt = elf.fmt;
    // patchelf looks for the symbol table first, so a static file fails naming `.dynsym`.
    let symtab = elf.dyn_val(DT_SYMTAB).ok_or(Error::Missing { name: ".dynsym", hint: "" })?;
    let count = elf.dynsym_count()?;
    let sz = fmt.sym_size();
    const W: &str = "symbol table out of bounds";
    let sym_off = elf.vaddr_to_offset(symtab, count.checked_mul(sz).ok_or(Malformed::OutOfBounds(W))?, W)?;
    let mut entries: Vec<Vec<u8>> = (0..count)
        .map(|i| slice(elf.data, sym_off + i * sz, sz, W).map(<[u8]>::to_vec))
        .collect::<Result<_, _>>()?;
    let mut names = Vec::with_capacity(entries.len());
    let mut renamed = false;
    for e in entries.iter_mut() {
        let name_off = u64::from(fmt.u32(e, 0, W)?);
        let name = ed.string(name_off)?;
        match map.get(&name) {
            Some(new) if *new != name => {
                if ed.debug_enabled() {
                    let _ = writeln!(
                        log,
                        "renaming dynamic symbol {} to {}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(new)
                    );
                }
                let off = u32::try_from(ed.add_string(new)?).map_err(|_| crate::edit::too_big())?;
                e[..4].copy_from_slice(&fmt.u32_bytes(off));
                names.push(new.clone());
                renamed = true;
            }
            _ => names.push(name),
        }
    }
    if !renamed {
        return Ok(());
    }

    // New order of the symbols: `.gnu.hash` wants the hashed tail sorted by bucket.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let gnu = match elf.dyn_val(DT_GNU_HASH) {
        Some(addr) => Some(GnuHash::read(ed, addr)?),
        None => None,
    };
    if let Some(g) = &gnu {
        let start = (g.symoffset as usize).min(order.len());
        order[start..].sort_by_key(|&i| (gnu_hash(&names[i]) % g.nbuckets.max(1), i));
    }
    let permuted = order.iter().enumerate().any(|(new, &old)| new != old);
    let entries: Vec<Vec<u8>> = order.iter().map(|&i| entries[i].clone()).collect();
    let names: Vec<Vec<u8>> = order.iter().map(|&i| names[i].clone()).collect();
    ed.patches.push((sym_off, entries.concat()));

    if permuted {
        let mut new_index = vec![0u64; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new as u64;
        }
        if let Some(versym) = elf.dyn_val(DT_VERSYM) {
            const V: &str = "symbol versions out of bounds";
            let off = elf.vaddr_to_offset(versym, count * 2, V)?;
            let mut out = Vec::with_capacity((count * 2) as usize);
            for &old in &order {
                out.extend_from_slice(slice(elf.data, off + old as u64 * 2, 2, V)?);
            }
            ed.patches.push((off, out));
        }
        remap_relocations(ed, &new_index)?;
    }
    if let Some(g) = gnu {
        ed.patches.push(g.rebuild(fmt, &names));
    }
    if let Some(addr) = elf.dyn_val(DT_HASH) {
        let patch = rebuild_sysv(ed, addr, &names)?;
        ed.patches.push(patch);
    }
    Ok(())
}

/// Rewrites the symbol index of every relocation the dynamic segment lists.
fn remap_relocations(ed: &mut Editor<'_, '_>, new_index: &[u64]) -> Result<()> {
    let elf = ed.elf;
    let fmt = elf.fmt;
    let w = fmt.word_size();
    let mut tables = Vec::new();
    if let (Some(a), Some(s)) = (elf.dyn_val(DT_RELA), elf.dyn_val(DT_RELASZ)) {
        tables.push((a, s, elf.dyn_val(DT_RELAENT).unwrap_or(3 * w)));
    }
    if let (Some(a), Some(s)) = (elf.dyn_val(DT_REL), elf.dyn_val(DT_RELSZ)) {
        tables.push((a, s, elf.dyn_val(DT_RELENT).unwrap_or(2 * w)));
    }
    if let (Some(a), Some(s)) = (elf.dyn_val(DT_JMPREL), elf.dyn_val(DT_PLTRELSZ)) {
        let ent = if elf.dyn_val(DT_PLTREL) == Some(DT_RELA) { 3 * w } else { 2 * w };
        tables.push((a, s, ent));
    }
    const R: &str = "relocation table out of bounds";
    for (addr, size, ent) in tables {
        if ent < 2 * w || size == 0 {
            continue;
        }
        let off = elf.vaddr_to_offset(addr, size, R)?;
        for i in 0..size / ent {
            let at = off + i * ent + w;
            let info = fmt.word(elf.data, at, R)?;
            let (sym, ty) =
                if fmt.is64 { (info >> 32, info & 0xffff_ffff) } else { (info >> 8, info & 0xff) };
            let Some(&new) = usize::try_from(sym).ok().and_then(|s| new_index.get(s)) else { continue };
            if new != sym {
                let info = if fmt.is64 { (new << 32) | ty } else { (new << 8) | ty };
                ed.patches.push((at, fmt.word_bytes(info)));
            }
        }
    }
    Ok(())
}

struct GnuHash {
    off: u64,
    nbuckets: u32,
    symoffset: u32,
    bloom_size: u32,
    bloom_shift: u32,
    len: u64,
}

impl GnuHash {
    fn read(ed: &Editor<'_, '_>, addr: u64) -> Result<GnuHash> {
        let elf = ed.elf;
        const W: &str = ".gnu.hash table header out of range";
        let off = elf.vaddr_to_offset(addr, 16, W)?;
        let nbuckets = elf.fmt.u32(elf.data, off, W)?;
        let symoffset = elf.fmt.u32(elf.data, off + 4, W)?;
        let bloom_size = elf.fmt.u32(elf.data, off + 8, W)?;
        let bloom_shift = elf.fmt.u32(elf.data, off + 12, W)?;
        let count = elf.dynsym_count()?;
        let chains = count.saturating_sub(u64::from(symoffset));
        let len = 16 + u64::from(bloom_size) * elf.fmt.word_size() + 4 * u64::from(nbuckets) + 4 * chains;
        slice(elf.data, off, len, W)?;
        if nbuckets == 0 || bloom_size == 0 {
            return Err(Malformed::Invalid(W).into());
        }
        Ok(GnuHash { off, nbuckets, symoffset, bloom_size, bloom_shift, len })
    }

    /// The whole table for `names` (already in bucket order from `symoffset` on).
    fn rebuild(&self, fmt: Fmt, names: &[Vec<u8>]) -> (u64, Vec<u8>) {
        let bits = fmt.word_size() * 8;
        let mut bloom = vec![0u64; self.bloom_size as usize];
        let mut buckets = vec![0u32; self.nbuckets as usize];
        let start = (self.symoffset as usize).min(names.len());
        let hashes: Vec<u32> = names[start..].iter().map(|n| gnu_hash(n)).collect();
        let mut chains = vec![0u32; hashes.len()];
        for (k, &h) in hashes.iter().enumerate() {
            let h = u64::from(h);
            let word = ((h / bits) % u64::from(self.bloom_size)) as usize;
            bloom[word] |= (1 << (h % bits)) | (1 << (h.checked_shr(self.bloom_shift).unwrap_or(0) % bits));
            let b = (h % u64::from(self.nbuckets)) as usize;
            if buckets[b] == 0 {
                buckets[b] = (start + k) as u32;
            }
            let last_in_bucket =
                hashes.get(k + 1).is_none_or(|&next| u64::from(next) % u64::from(self.nbuckets) != b as u64);
            chains[k] = (h as u32 & !1) | u32::from(last_in_bucket);
        }
        let mut out = Vec::with_capacity(self.len as usize);
        for v in [self.nbuckets, self.symoffset, self.bloom_size, self.bloom_shift] {
            fmt.put_u32(&mut out, v);
        }
        for w in bloom {
            fmt.put_word(&mut out, w);
        }
        for b in buckets {
            fmt.put_u32(&mut out, b);
        }
        for c in chains {
            fmt.put_u32(&mut out, c);
        }
        (self.off, out)
    }
}

fn rebuild_sysv(ed: &Editor<'_, '_>, addr: u64, names: &[Vec<u8>]) -> Result<(u64, Vec<u8>)> {
    let elf = ed.elf;
    let fmt = elf.fmt;
    let es = elf.hash_entry_size();
    const W: &str = "hash table header out of range";
    let off = elf.vaddr_to_offset(addr, 2 * es, W)?;
    let read =
        |at: u64| if es == 8 { fmt.u64(elf.data, at, W) } else { fmt.u32(elf.data, at, W).map(u64::from) };
    let nbucket = read(off)?;
    let nchain = read(off + es)?;
    slice(elf.data, off, (2 + nbucket + nchain) * es, W)?;
    if nbucket == 0 {
        return Err(Malformed::Invalid("hash table has no buckets").into());
    }
    let mut buckets = vec![0u64; nbucket as usize];
    let mut chains = vec![0u64; nchain as usize];
    for (i, name) in names.iter().enumerate().skip(1).take(nchain as usize) {
        let b = (u64::from(sysv_hash(name)) % nbucket) as usize;
        chains[i] = buckets[b];
        buckets[b] = i as u64;
    }
    let mut out = Vec::new();
    for v in [nbucket, nchain].into_iter().chain(buckets).chain(chains) {
        if es == 8 { fmt.put_u64(&mut out, v) } else { fmt.put_u32(&mut out, v as u32) }
    }
    Ok((off, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_values() {
        assert_eq!(gnu_hash(b""), 0x0000_1505);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(sysv_hash(b""), 0);
        assert_eq!(sysv_hash(b"printf"), 0x0779_05a6);
    }
}
