//! The edit operations: each reads the parsed file plus the edits made so far and records its changes in an
//! [`Editor`], without laying anything out.
//!
//! Strings go into a working copy of `.dynstr` (appended, or reused when the table already holds them), `.dynamic`
//! entries into a working list, small fixed-size fields into byte patches. `layout.rs` turns the final state into one
//! rewrite, so any number of edits costs one layout pass.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::elf::{Elf, str_at};
use crate::error::{Error, Malformed, Result};
use crate::options::{Options, RpathOp};
use crate::raw::*;

/// Accumulated changes to one file.
#[derive(Debug)]
pub struct Editor<'e, 'a> {
    pub(crate) elf: &'e Elf<'a>,
    pub(crate) osabi: u8,
    /// New interpreter path without its NUL.
    pub(crate) interp: Option<Vec<u8>>,
    /// Working `.dynamic` entries (without the terminator); empty when the file has no dynamic segment.
    pub(crate) dyns: Vec<Dyn>,
    /// Working copy of `.dynstr`; loaded on first use.
    pub(crate) dynstr: Option<Vec<u8>>,
    /// In-place writes at file offsets, applied in order.
    pub(crate) patches: Vec<(u64, Vec<u8>)>,
    /// Program header flags to change, by index.
    pub(crate) phdr_flags: Vec<(usize, u32)>,
    /// Flags of a `PT_GNU_STACK` header to add.
    pub(crate) add_gnu_stack: Option<u32>,
    /// Whether an edit invalidated any resolution-cache note (patchelf's rules: a changed run path, any
    /// `--remove-rpath`, a removed, replaced or added `DT_NEEDED`).
    drop_cache: bool,
    /// The resolution-cache note that goes away.
    pub(crate) drop_note: Option<crate::ldcache::Existing>,
    /// A resolution-cache note record to add.
    pub(crate) add_note: Option<Vec<u8>>,
    debug: bool,
}

/// Writes a debug line when `--debug` or `PATCHELF_DEBUG` is on.
macro_rules! debug {
    ($ed:expr, $log:expr, $($arg:tt)*) => {
        if $ed.debug {
            let _ = writeln!($log, $($arg)*);
        }
    };
}

const STRING_TAGS: [u64; 6] = [DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_AUXILIARY, DT_FILTER];

impl<'e, 'a> Editor<'e, 'a> {
    pub fn new(elf: &'e Elf<'a>, debug: bool) -> Editor<'e, 'a> {
        Editor {
            elf,
            osabi: elf.ehdr.osabi,
            interp: None,
            dyns: elf.dynamic.as_ref().map(|d| d.entries.clone()).unwrap_or_default(),
            dynstr: None,
            patches: Vec::new(),
            phdr_flags: Vec::new(),
            add_gnu_stack: None,
            drop_cache: false,
            drop_note: None,
            add_note: None,
            debug,
        }
    }

    /// Runs every option in patchelf's fixed order; print options write to `out`, debug traces to `log`.
    pub fn run(&mut self, opts: &Options, out: &mut dyn Write, log: &mut dyn Write) -> Result<()> {
        self.elf.check_patchable()?;
        let io = |e| Error::io("writing", "standard output", e);
        if opts.print_interpreter {
            let interp = self.current_interp()?;
            out.write_all(&interp).and_then(|_| out.write_all(b"\n")).map_err(io)?;
        }
        if opts.print_os_abi {
            writeln!(out, "{}", os_abi_name(self.osabi)).map_err(io)?;
        }
        if let Some(name) = &opts.set_os_abi {
            let abi = parse_os_abi(name).ok_or_else(|| Error::Unsupported("unrecognized OS ABI".into()))?;
            if abi != self.osabi {
                debug!(self, log, "changing OS ABI from {} to {}", os_abi_name(self.osabi), os_abi_name(abi));
                self.osabi = abi;
            }
        }
        if opts.print_soname && self.elf.ehdr.e_type == ET_DYN {
            self.require_dynamic()?;
            if let Some(d) = self.dyns.iter().find(|d| d.tag == DT_SONAME).copied() {
                let name = self.string(d.val)?;
                out.write_all(&name).and_then(|_| out.write_all(b"\n")).map_err(io)?;
            }
        }
        if let Some(soname) = &opts.set_soname {
            self.set_soname(soname, log)?;
        }
        if let Some(interp) = &opts.set_interpreter
            && !interp.is_empty()
        {
            self.set_interpreter(interp, log)?;
        }
        if opts.print_rpath {
            let rpath = self.current_rpath()?.map(|(_, s)| s).unwrap_or_default();
            out.write_all(&rpath).and_then(|_| out.write_all(b"\n")).map_err(io)?;
        }
        if opts.print_execstack {
            let state = match self.gnu_stack_flags() {
                Some(f) if f & PF_X != 0 => "X",
                Some(_) => "-",
                None => "?",
            };
            writeln!(out, "execstack: {state}").map_err(io)?;
        }
        // One execstack action per call, printing first: patchelf ignores --clear/--set-execstack next to
        // --print-execstack, and --set-execstack next to --clear-execstack.
        if !opts.print_execstack {
            if opts.clear_execstack {
                self.modify_execstack(false, log);
            } else if opts.set_execstack {
                self.modify_execstack(true, log);
            }
        }
        if let Some(op) = &opts.rpath {
            self.modify_rpath(op, opts.force_rpath, log)?;
        }
        if opts.print_needed {
            self.require_dynamic()?;
            let needed: Vec<u64> = self.dyns.iter().filter(|d| d.tag == DT_NEEDED).map(|d| d.val).collect();
            for off in needed {
                let name = self.string(off)?;
                out.write_all(&name).and_then(|_| out.write_all(b"\n")).map_err(io)?;
            }
        }
        if !opts.remove_needed.is_empty() {
            self.remove_needed(opts, log)?;
        }
        if !opts.replace_needed.is_empty() {
            self.replace_needed(opts, log)?;
        }
        if !opts.add_needed.is_empty() {
            self.require_dynamic()?;
            let mut new = Vec::new();
            for lib in &opts.add_needed {
                debug!(self, log, "adding DT_NEEDED '{}'", String::from_utf8_lossy(lib));
                new.push(Dyn { tag: DT_NEEDED, val: self.add_string(lib)? });
            }
            // patchelf puts new entries first, in sorted order.
            self.dyns.splice(0..0, new);
            self.drop_cache = true;
        }
        if !opts.clear_symbol_version.is_empty() {
            self.clear_symbol_versions(opts, log)?;
        }
        if opts.no_default_lib {
            self.require_dynamic()?;
            match self.dyns.iter_mut().find(|d| d.tag == DT_FLAGS_1) {
                Some(d) => d.val |= DF_1_NODEFLIB,
                None => self.dyns.insert(0, Dyn { tag: DT_FLAGS_1, val: DF_1_NODEFLIB }),
            }
        }
        if opts.add_debug_tag {
            self.require_dynamic()?;
            if !self.dyns.iter().any(|d| d.tag == DT_DEBUG) {
                self.dyns.insert(0, Dyn { tag: DT_DEBUG, val: 0 });
            }
        }
        // A resolution cache describes the run path and DT_NEEDED it was built from: edits of those drop it.
        if self.drop_cache
            && let Some(existing) = crate::ldcache::find(self.elf)
        {
            debug!(self, log, "removing the resolution cache note");
            self.drop_note = Some(existing);
        }
        if opts.build_resolution_cache {
            self.build_resolution_cache(log)?;
        }
        if !opts.rename_dynamic_symbols.is_empty() {
            crate::symbols::rename(self, &opts.rename_dynamic_symbols, log)?;
        }
        Ok(())
    }

    fn build_resolution_cache(&mut self, log: &mut dyn Write) -> Result<()> {
        use crate::ldcache::Resolution;
        // A note already there (and not dropped by this call) is kept only when it says exactly what a new one
        // would; any other outcome is an error rather than a stale note left behind.
        let existing = if self.drop_note.is_some() { None } else { crate::ldcache::find(self.elf) };
        let stale = || {
            Error::Unsupported(
                "--build-resolution-cache: a resolution cache note is already present; rebuild from an unpatched \
                 binary"
                    .into(),
            )
        };
        let warn = |log: &mut dyn Write, what: &str| {
            let _ = writeln!(log, "warning: --build-resolution-cache: {what}; no cache written");
        };
        if self.elf.dynamic.is_none() {
            if existing.is_some() {
                return Err(stale());
            }
            // Like patchelf, a static file is not an error for this option (it runs over whole package trees).
            warn(log, "no dynamic section (statically linked?)");
            return Ok(());
        }
        let rpath = self.current_rpath()?.map(|(_, s)| s).unwrap_or_default();
        let needed: Vec<u64> = self.dyns.iter().filter(|d| d.tag == DT_NEEDED).map(|d| d.val).collect();
        let mut names = Vec::new();
        for off in needed {
            names.push(self.string(off)?);
        }
        let desc = match crate::ldcache::resolve(&names, &rpath) {
            Resolution::Descriptor(d) => d,
            other => {
                if existing.is_some() {
                    return Err(stale());
                }
                warn(
                    log,
                    if other == Resolution::NothingToResolve {
                        "no DT_NEEDED entries or run path to resolve"
                    } else {
                        "no libraries resolved against the run path"
                    },
                );
                return Ok(());
            }
        };
        if let Some(existing) = existing {
            if existing.desc.as_ref() == Some(&desc) {
                debug!(self, log, "resolution cache already up to date");
                return Ok(());
            }
            return Err(stale());
        }
        debug!(self, log, "writing a resolution cache note of {} bytes", desc.len());
        self.add_note = Some(crate::ldcache::note(self.elf.fmt, &desc));
        Ok(())
    }

    pub(crate) fn debug_enabled(&self) -> bool {
        self.debug
    }

    fn require_dynamic(&self) -> Result<()> {
        self.elf.dynamic().map(|_| ())
    }

    /// The working `.dynstr`.
    pub(crate) fn strtab(&mut self) -> Result<&mut Vec<u8>> {
        if self.dynstr.is_none() {
            self.dynstr = Some(self.elf.dynstr()?.to_vec());
        }
        Ok(self.dynstr.get_or_insert_with(Vec::new))
    }

    /// The string at `off` in the working `.dynstr`.
    pub(crate) fn string(&mut self, off: u64) -> Result<Vec<u8>> {
        Ok(str_at(self.strtab()?, off)?.to_vec())
    }

    /// Offset of `s` in `.dynstr`: an existing copy (also as the tail of a longer string) or a new one appended.
    pub(crate) fn add_string(&mut self, s: &[u8]) -> Result<u64> {
        let table = self.strtab()?;
        let mut needle = s.to_vec();
        needle.push(0);
        if let Some(pos) = memchr::memmem::find(table, &needle) {
            return Ok(pos as u64);
        }
        let pos = table.len() as u64;
        table.extend_from_slice(&needle);
        Ok(pos)
    }

    fn current_interp(&self) -> Result<Vec<u8>> {
        match &self.interp {
            Some(i) => Ok(i.clone()),
            None => Ok(self.elf.interp()?.to_vec()),
        }
    }

    fn set_interpreter(&mut self, interp: &[u8], log: &mut dyn Write) -> Result<()> {
        let current = self.current_interp()?;
        if current == interp {
            return Ok(());
        }
        debug!(self, log, "new interpreter is '{}'", String::from_utf8_lossy(interp));
        self.interp = Some(interp.to_vec());
        Ok(())
    }

    fn set_soname(&mut self, soname: &[u8], log: &mut dyn Write) -> Result<()> {
        if self.elf.ehdr.e_type != ET_DYN {
            debug!(self, log, "this is an executable file, not changing its soname");
            return Ok(());
        }
        self.require_dynamic()?;
        let off = self.add_string(soname)?;
        debug!(self, log, "new SONAME is '{}'", String::from_utf8_lossy(soname));
        match self.dyns.iter_mut().find(|d| d.tag == DT_SONAME) {
            Some(d) => d.val = off,
            None => self.dyns.insert(0, Dyn { tag: DT_SONAME, val: off }),
        }
        Ok(())
    }

    fn gnu_stack_flags(&self) -> Option<u32> {
        if let Some(flags) = self.add_gnu_stack {
            return Some(flags);
        }
        let i = self.elf.phdrs.iter().position(|p| p.p_type == PT_GNU_STACK)?;
        Some(
            self.phdr_flags
                .iter()
                .rev()
                .find(|(j, _)| *j == i)
                .map_or(self.elf.phdrs[i].p_flags, |(_, f)| *f),
        )
    }

    fn modify_execstack(&mut self, exec: bool, log: &mut dyn Write) {
        let old = self.gnu_stack_flags();
        let base = old.unwrap_or(PF_R | PF_W);
        let new = if exec { base | PF_X } else { base & !PF_X };
        debug!(self, log, "{} execstack", if exec { "setting" } else { "clearing" });
        match self.elf.phdrs.iter().position(|p| p.p_type == PT_GNU_STACK) {
            Some(i) => self.phdr_flags.push((i, new)),
            None => self.add_gnu_stack = Some(new),
        }
    }

    /// The run path in force (RUNPATH wins over RPATH) as (offset, string).
    fn current_rpath(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        self.require_dynamic()?;
        let entry = self
            .dyns
            .iter()
            .find(|d| d.tag == DT_RUNPATH)
            .or_else(|| self.dyns.iter().find(|d| d.tag == DT_RPATH))
            .copied();
        match entry {
            Some(d) => Ok(Some((d.val, self.string(d.val)?))),
            None => Ok(None),
        }
    }

    fn modify_rpath(&mut self, op: &RpathOp, force_rpath: bool, log: &mut dyn Write) -> Result<()> {
        let current = self.current_rpath()?;
        let old = current.as_ref().map(|(_, s)| s.clone());
        let new = match op {
            RpathOp::Remove => {
                self.drop_cache = true;
                if current.is_none() {
                    debug!(self, log, "no RPATH to delete");
                    return Ok(());
                }
                self.dyns.retain(|d| d.tag != DT_RPATH && d.tag != DT_RUNPATH);
                return Ok(());
            }
            RpathOp::Shrink { allowed_prefixes } => {
                let Some(old) = &old else {
                    self.drop_cache = true;
                    debug!(self, log, "no RPATH to shrink");
                    return Ok(());
                };
                self.shrink(old, allowed_prefixes, log)?
            }
            RpathOp::Set(v) => v.clone(),
            RpathOp::Add(v) => match &old {
                Some(o) if !o.is_empty() => [o.as_slice(), b":", v].concat(),
                _ => v.clone(),
            },
        };
        let has_rpath = self.dyns.iter().any(|d| d.tag == DT_RPATH);
        let has_runpath = self.dyns.iter().any(|d| d.tag == DT_RUNPATH);
        let indices = |dyns: &[Dyn], tag: u64| -> Vec<usize> {
            dyns.iter().enumerate().filter(|(_, d)| d.tag == tag).map(|(i, _)| i).collect()
        };
        // The entries that take the new value: all run-path entries, except that with --force-rpath a DT_RUNPATH
        // turned into DT_RPATH is the one patchelf updates, and a DT_RPATH that was there beside it keeps its value.
        let mut targets = [indices(&self.dyns, DT_RPATH), indices(&self.dyns, DT_RUNPATH)].concat();
        if !force_rpath && has_rpath && !has_runpath {
            debug!(self, log, "converting DT_RPATH to DT_RUNPATH");
            self.dyns.iter_mut().filter(|d| d.tag == DT_RPATH).for_each(|d| d.tag = DT_RUNPATH);
        } else if force_rpath && has_runpath {
            debug!(self, log, "converting DT_RUNPATH to DT_RPATH");
            targets = indices(&self.dyns, DT_RUNPATH);
            self.dyns.iter_mut().filter(|d| d.tag == DT_RUNPATH).for_each(|d| d.tag = DT_RPATH);
        }
        if old.as_deref() != Some(new.as_slice()) {
            self.drop_cache = true;
        }
        // No run path counts as an empty one: setting or adding "" to a file without one changes nothing.
        if old.as_deref().unwrap_or_default() == new.as_slice() {
            return Ok(());
        }
        debug!(self, log, "new rpath is '{}'", String::from_utf8_lossy(&new));
        let mut new_off = None;
        if let Some((off, old)) = &current
            && !self.is_shared(*off, old.len() as u64, &targets)?
        {
            // An unshared old value is blanked so no stale path (e.g. a Nix store reference) stays in the file.
            let start = *off as usize;
            let table = self.strtab()?;
            table[start..start + old.len()].fill(b'X');
            if new.len() <= old.len() {
                table[start..start + new.len()].copy_from_slice(&new);
                table[start + new.len()] = 0;
                new_off = Some(*off);
            }
        }
        let new_off = match new_off {
            Some(o) => o,
            None => {
                debug!(self, log, "rpath is too long or shared, resizing...");
                self.add_string(&new)?
            }
        };
        for &i in &targets {
            self.dyns[i].val = new_off;
        }
        if targets.is_empty() {
            let tag = if force_rpath { DT_RPATH } else { DT_RUNPATH };
            self.dyns.insert(0, Dyn { tag, val: new_off });
        }
        Ok(())
    }

    /// Whether any string reference other than the dynamic entries `updated` (the run-path entries taking a new
    /// value) points into `[off, off + len)`.
    fn is_shared(&mut self, off: u64, len: u64, updated: &[usize]) -> Result<bool> {
        let inside = |r: u64| r >= off && r < off + len;
        if self
            .dyns
            .iter()
            .enumerate()
            .any(|(i, d)| STRING_TAGS.contains(&d.tag) && !updated.contains(&i) && inside(d.val))
        {
            return Ok(true);
        }
        let refs = match self.other_string_refs() {
            Ok(r) => r,
            // Without a readable symbol table we cannot prove the string unshared: leave it alone.
            Err(_) => return Ok(true),
        };
        Ok(refs.into_iter().any(inside))
    }

    /// `.dynstr` offsets used by `.dynsym` names and version records.
    fn other_string_refs(&self) -> Result<Vec<u64>> {
        let elf = self.elf;
        let mut refs = Vec::new();
        if let Some(symtab) = elf.dyn_val(DT_SYMTAB) {
            let count = elf.dynsym_count()?;
            let sz = elf.fmt.sym_size();
            let off = elf.vaddr_to_offset(symtab, count.saturating_mul(sz), "symbol table out of bounds")?;
            for i in 0..count {
                refs.push(u64::from(elf.fmt.u32(elf.data, off + i * sz, "symbol table out of bounds")?));
            }
        }
        for v in self.verneed_records()? {
            refs.push(v.name);
        }
        if let (Some(addr), Some(num)) = (elf.dyn_val(DT_VERDEF), elf.dyn_val(DT_VERDEFNUM)) {
            const W: &str = "version definitions out of bounds";
            let mut off = elf.vaddr_to_offset(addr, 20, W)?;
            for _ in 0..num.min(1 << 16) {
                let cnt = elf.fmt.u16(elf.data, off + 2, W)?;
                let mut aux = off + u64::from(elf.fmt.u32(elf.data, off + 12, W)?);
                for _ in 0..cnt {
                    refs.push(u64::from(elf.fmt.u32(elf.data, aux, W)?));
                    aux += u64::from(elf.fmt.u32(elf.data, aux + 4, W)?);
                }
                let next = elf.fmt.u32(elf.data, off + 16, W)?;
                if next == 0 {
                    break;
                }
                off += u64::from(next);
            }
        }
        Ok(refs)
    }

    /// Every string reference of `.gnu.version_r`: `vn_file` (with `file_field` set) and `vna_name`.
    pub(crate) fn verneed_records(&self) -> Result<Vec<VerRef>> {
        let elf = self.elf;
        let mut out = Vec::new();
        let (Some(addr), Some(num)) = (elf.dyn_val(DT_VERNEED), elf.dyn_val(DT_VERNEEDNUM)) else {
            return Ok(out);
        };
        const W: &str = "version needs out of bounds";
        let mut off = elf.vaddr_to_offset(addr, 16, W)?;
        for _ in 0..num.min(1 << 16) {
            let cnt = elf.fmt.u16(elf.data, off + 2, W)?;
            out.push(VerRef {
                field: off + 4,
                name: u64::from(elf.fmt.u32(elf.data, off + 4, W)?),
                file: true,
            });
            let mut aux = off + u64::from(elf.fmt.u32(elf.data, off + 8, W)?);
            for _ in 0..cnt {
                out.push(VerRef {
                    field: aux + 8,
                    name: u64::from(elf.fmt.u32(elf.data, aux + 8, W)?),
                    file: false,
                });
                let next = elf.fmt.u32(elf.data, aux + 12, W)?;
                if next == 0 {
                    break;
                }
                aux += u64::from(next);
            }
            let next = elf.fmt.u32(elf.data, off + 12, W)?;
            if next == 0 {
                break;
            }
            off += u64::from(next);
        }
        Ok(out)
    }

    fn shrink(&mut self, old: &[u8], allowed: &[Vec<u8>], log: &mut dyn Write) -> Result<Vec<u8>> {
        let needed: Vec<u64> = self.dyns.iter().filter(|d| d.tag == DT_NEEDED).map(|d| d.val).collect();
        let mut names = Vec::new();
        for off in needed {
            names.push(self.string(off)?);
        }
        let mut found = vec![false; names.len()];
        let mut kept: Vec<&[u8]> = Vec::new();
        for dir in old.split(|&b| b == b':') {
            if dir.is_empty() {
                continue;
            }
            if dir[0] != b'/' {
                kept.push(dir);
                continue;
            }
            if !allowed.is_empty() && !allowed.iter().any(|p| dir.starts_with(p)) {
                debug!(
                    self,
                    log,
                    "removing directory '{}' from RPATH because of non-allowed prefix",
                    lossy(dir)
                );
                continue;
            }
            let mut useful = false;
            for (j, name) in names.iter().enumerate() {
                if found[j] {
                    continue;
                }
                let path = Path::new(OsStr::from_bytes(dir)).join(OsStr::from_bytes(name));
                if same_machine(&path, self.elf.ehdr.e_machine)? {
                    debug!(self, log, "found library '{}'", path.display());
                    found[j] = true;
                    useful = true;
                }
            }
            if useful {
                kept.push(dir);
            } else {
                debug!(self, log, "removing directory '{}' from RPATH", lossy(dir));
            }
        }
        Ok(kept.join(&b':'))
    }

    fn remove_needed(&mut self, opts: &Options, log: &mut dyn Write) -> Result<()> {
        self.require_dynamic()?;
        let mut keep = Vec::with_capacity(self.dyns.len());
        for d in std::mem::take(&mut self.dyns) {
            if d.tag == DT_NEEDED {
                let name = self.string(d.val)?;
                if opts.remove_needed.contains(&name) {
                    debug!(self, log, "removing DT_NEEDED entry '{}'", lossy(&name));
                    self.drop_cache = true;
                    continue;
                }
            }
            keep.push(d);
        }
        self.dyns = keep;
        Ok(())
    }

    fn replace_needed(&mut self, opts: &Options, log: &mut dyn Write) -> Result<()> {
        self.require_dynamic()?;
        for i in 0..self.dyns.len() {
            if self.dyns[i].tag != DT_NEEDED {
                continue;
            }
            let name = self.string(self.dyns[i].val)?;
            if let Some(new) = opts.replace_needed.get(&name)
                && *new != name
            {
                debug!(self, log, "replacing DT_NEEDED entry '{}' with '{}'", lossy(&name), lossy(new));
                self.dyns[i].val = self.add_string(new)?;
                self.drop_cache = true;
            }
        }
        // The version-needs records name the same libraries; ld.so asserts if they no longer match DT_NEEDED.
        for rec in self.verneed_records()?.into_iter().filter(|r| r.file) {
            let name = self.string(rec.name)?;
            if let Some(new) = opts.replace_needed.get(&name)
                && *new != name
            {
                debug!(self, log, "replacing .gnu.version_r entry '{}' with '{}'", lossy(&name), lossy(new));
                let off = self.add_string(new)?;
                let bytes = self.elf.fmt.u32_bytes(u32::try_from(off).map_err(|_| too_big())?);
                self.patches.push((rec.field, bytes));
                self.drop_cache = true;
            }
        }
        Ok(())
    }

    fn clear_symbol_versions(&mut self, opts: &Options, log: &mut dyn Write) -> Result<()> {
        if self.elf.dynamic.is_none() {
            return Err(Error::Missing {
                name: ".dynstr",
                hint: ". The input file is most likely statically linked",
            });
        }
        let elf = self.elf;
        let symtab = elf.dyn_val(DT_SYMTAB).ok_or(Error::Missing { name: ".dynsym", hint: "" })?;
        let versym = elf.dyn_val(DT_VERSYM).ok_or(Error::Missing { name: ".gnu.version", hint: "" })?;
        let count = elf.dynsym_count()?;
        let sz = elf.fmt.sym_size();
        let sym_off = elf.vaddr_to_offset(symtab, count.saturating_mul(sz), "symbol table out of bounds")?;
        let ver_off =
            elf.vaddr_to_offset(versym, count.saturating_mul(2), "symbol versions out of bounds")?;
        for i in 0..count {
            let name_off =
                u64::from(elf.fmt.u32(elf.data, sym_off + i * sz, "symbol table out of bounds")?);
            let name = self.string(name_off)?;
            if opts.clear_symbol_version.contains(&name) {
                debug!(self, log, "clearing symbol version for {}", lossy(&name));
                self.patches.push((ver_off + 2 * i, elf.fmt.u16_bytes(1)));
            }
        }
        Ok(())
    }
}

/// A string reference inside `.gnu.version_r`: the file offset of the field and the string offset it holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VerRef {
    pub field: u64,
    pub name: u64,
    pub file: bool,
}

pub(crate) fn too_big() -> Error {
    Error::Malformed(Malformed::Invalid("string table too large"))
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Whether `path` is an ELF file for `machine` (a missing file is simply no match, other errors abort).
fn same_machine(path: &Path, machine: u16) -> Result<bool> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.raw_os_error() == Some(20) => return Ok(false), // ENOTDIR: a path component is a file
        Err(e) => return Err(Error::io("opening", path, e)),
    };
    let mut head = [0u8; 20];
    if f.read_exact(&mut head).is_err() || &head[0..4] != b"\x7fELF" {
        return Ok(false);
    }
    let m = if head[5] == 2 {
        u16::from_be_bytes([head[18], head[19]])
    } else {
        u16::from_le_bytes([head[18], head[19]])
    };
    Ok(m == machine)
}

pub fn os_abi_name(abi: u8) -> String {
    match abi {
        0 => "System V".into(),
        1 => "HP-UX".into(),
        2 => "NetBSD".into(),
        3 => "Linux".into(),
        4 => "GNU Hurd".into(),
        6 => "Solaris".into(),
        7 => "AIX".into(),
        8 => "IRIX".into(),
        9 => "FreeBSD".into(),
        10 => "Tru64".into(),
        12 => "OpenBSD".into(),
        13 => "OpenVMS".into(),
        other => format!("0x{other:02X}"),
    }
}

/// Parses an OS ABI name as patchelf does: surrounding blanks and case are ignored, the rest must be one of its
/// names or aliases exactly (`System V`, `system-v`, `sysv`, `gnu`, `gnu hurd`, `hurd`, …).
pub fn parse_os_abi(name: &str) -> Option<u8> {
    let key = name.trim_matches(|c: char| c.is_ascii_whitespace()).to_ascii_lowercase();
    Some(match key.as_str() {
        "system v" | "system-v" | "sysv" => 0,
        "hp-ux" => 1,
        "netbsd" => 2,
        "linux" | "gnu" => 3,
        "gnu hurd" | "gnu-hurd" | "hurd" => 4,
        "solaris" => 6,
        "aix" => 7,
        "irix" => 8,
        "freebsd" => 9,
        "tru64" => 10,
        "openbsd" => 12,
        "openvms" => 13,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_abi_names_round_trip() {
        for abi in [0u8, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13] {
            assert_eq!(parse_os_abi(&os_abi_name(abi)), Some(abi), "{abi}");
        }
        assert_eq!(parse_os_abi(" sysv "), Some(0));
        assert_eq!(parse_os_abi("System-V"), Some(0));
        assert_eq!(parse_os_abi("\nlinux\n"), Some(3));
        assert_eq!(parse_os_abi("GNU"), Some(3));
        assert_eq!(parse_os_abi("GNU-Hurd"), Some(4));
        // patchelf 0.19.3 rejects these; so must a drop-in, or a script's typo would pass here and fail there.
        for bad in ["beos", "SYS-V", "sys_v", "systemv", "Sys V", "hpux", "gnulinux", "gnuhurd", "none", ""] {
            assert_eq!(parse_os_abi(bad), None, "{bad:?}");
        }
        assert_eq!(os_abi_name(0x61), "0x61");
    }
}
