//! What one call asks for, in the fixed order patchelf applies it (not command-line order).
//!
//! `cli.rs` fills an [`Options`] from patchelf's arguments; `edit.rs` runs it against each file in field order;
//! `layout.rs` then places all resulting changes at once.

use std::collections::{BTreeMap, BTreeSet};

/// The one run-path operation of a call; patchelf allows one, in this priority: shrink, remove, set, add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpathOp {
    /// Keep only directories holding a needed library (and relative entries), optionally limited to prefixes.
    Shrink {
        allowed_prefixes: Vec<Vec<u8>>,
    },
    Remove,
    Set(Vec<u8>),
    Add(Vec<u8>),
}

/// Options of one call, documented in processing order. Strings are raw bytes: ELF strings need not be UTF-8.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub print_interpreter: bool,
    pub print_os_abi: bool,
    /// Name as given (`Linux`, `sysv`, `FreeBSD`, …); parsed when applied.
    pub set_os_abi: Option<String>,
    pub print_soname: bool,
    pub set_soname: Option<Vec<u8>>,
    /// An empty value is ignored, as patchelf ignores it.
    pub set_interpreter: Option<Vec<u8>>,
    pub print_rpath: bool,
    pub print_execstack: bool,
    pub clear_execstack: bool,
    pub set_execstack: bool,
    pub rpath: Option<RpathOp>,
    /// Write `DT_RPATH` instead of `DT_RUNPATH` (and convert an existing `DT_RUNPATH`).
    pub force_rpath: bool,
    pub print_needed: bool,
    pub remove_needed: BTreeSet<Vec<u8>>,
    pub replace_needed: BTreeMap<Vec<u8>, Vec<u8>>,
    pub add_needed: BTreeSet<Vec<u8>>,
    pub clear_symbol_version: BTreeSet<Vec<u8>>,
    pub no_default_lib: bool,
    pub add_debug_tag: bool,
    /// Write a `.note.nixos.ldcache` note resolving each `DT_NEEDED` along the run path.
    pub build_resolution_cache: bool,
    /// Old name → new name for `.dynsym` entries.
    pub rename_dynamic_symbols: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Alignment of a new segment; default by machine.
    pub page_size: Option<u64>,
    /// Overwrite the old bytes of moved tables with `'Z'` (patchelf's default; `--no-clobber-old-sections` turns it off).
    pub clobber_old_sections: bool,
}

impl Options {
    /// Whether any option may change a file (decides whether a file is opened for writing at all).
    pub fn modifies(&self) -> bool {
        self.set_os_abi.is_some()
            || self.set_soname.is_some()
            || self.set_interpreter.as_ref().is_some_and(|i| !i.is_empty())
            || self.clear_execstack
            || self.set_execstack
            || self.rpath.is_some()
            || !self.remove_needed.is_empty()
            || !self.replace_needed.is_empty()
            || !self.add_needed.is_empty()
            || !self.clear_symbol_version.is_empty()
            || self.no_default_lib
            || self.add_debug_tag
            || self.build_resolution_cache
            || !self.rename_dynamic_symbols.is_empty()
    }
}
