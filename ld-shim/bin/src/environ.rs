//! Hands the library path to the real loader as `LD_LIBRARY_PATH` and takes it back before the program runs.
//!
//! The loader reads `LD_LIBRARY_PATH` from the environment while it starts (and keeps its own copy for later
//! `dlopen`s). The shim points one envp slot at `LD_LIBRARY_PATH=<old>:<ours>` and makes `AT_ENTRY` point at the
//! entry trampoline; the trampoline runs [`restore`] after the loader is done and before the program's own entry,
//! so neither the program nor its children see the added path. [`restore`] writes only where the shim's pointer
//! still is (searching the array if the loader moved entries), and puts the real `AT_ENTRY` back so that
//! `getauxval(AT_ENTRY)` stays truthful.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ld_shim::buf::Strings;

use crate::stack::{AT_ENTRY, Stack};
use crate::sys;

const NAME: &[u8] = b"LD_LIBRARY_PATH=";
/// What an inserted slot becomes at the program's entry: the array cannot shrink (runtimes find auxv by walking
/// past envp's NULL), and an empty `LD_LIBRARY_PATH` means nothing to any loader.
static EMPTY_ENTRY: &[u8] = b"LD_LIBRARY_PATH=\0";

/// The program's real entry point.
static ENTRY: AtomicUsize = AtomicUsize::new(0);
/// Address of the envp slot the shim wrote, the pointer it wrote, and what to write back.
static SLOT: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicUsize = AtomicUsize::new(0);
static RESTORE: AtomicUsize = AtomicUsize::new(0);
/// Start of the envp array, for the search when the slot no longer holds our pointer.
static ENVP: AtomicUsize = AtomicUsize::new(0);
/// Address of `AT_ENTRY`'s value in auxv.
static AUX_ENTRY: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    /// Defined in the architecture's assembly.
    fn ld_shim_entry_trampoline();
}

/// Builds `LD_LIBRARY_PATH=<old>[:]<ours>\0` in memory that outlives the shim: the string block, or a mapping of
/// its own when the block is out of room.
fn build(strings: &mut Strings<'static>, old: &[u8], ours: &[u8]) -> *const u8 {
    let separator: &[u8] = if old.is_empty() { b"" } else { b":" };
    if let Ok(entry) = strings.concat(&[NAME, old, separator, ours]) {
        return entry.bytes().as_ptr();
    }
    let len = NAME.len() + old.len() + separator.len() + ours.len() + 1;
    // SAFETY: a fresh anonymous mapping, never unmapped.
    let addr = unsafe {
        sys::mmap(
            0,
            len,
            sys::PROT_READ | sys::PROT_WRITE,
            sys::MAP_PRIVATE | sys::MAP_ANONYMOUS,
            usize::MAX,
            0,
        )
    };
    let out: &mut [u8] = match addr {
        // SAFETY: the mapping is `len` bytes, readable and writable.
        Ok(addr) => unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) },
        Err(_) => crate::log::fail(b"cannot allocate memory for LD_LIBRARY_PATH"),
    };
    let mut at = 0;
    for part in [NAME, old, separator, ours, b"\0"] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    out.as_ptr()
}

/// Where the added path went.
pub enum Edit {
    /// An existing slot now holds our string; `previous` goes back at the entry.
    Replaced { slot: usize, previous: *const u8 },
    /// A new slot was inserted; it becomes an empty `LD_LIBRARY_PATH=` at the entry.
    Inserted { slot: usize },
}

/// Points an envp slot at `LD_LIBRARY_PATH=<old>:<ours>`: the user's own `LD_LIBRARY_PATH` slot if there is one
/// (`ld_library_path`, the last one, which is the one ld.so honours), else the slot of a `NIX_LD*` variable
/// (`borrow`; the loader reads none of them), else a slot inserted below the stack. Returns the new stack layout.
///
/// # Safety
/// `stack` must be the untouched initial stack with the gap the entry point leaves below it.
pub unsafe fn pass_library_path(
    stack: Stack,
    strings: &mut Strings<'static>,
    ours: &[u8],
    ld_library_path: Option<usize>,
    borrow: Option<usize>,
) -> (Stack, Edit) {
    if let Some(slot) = ld_library_path {
        let old = &stack.env(slot)[NAME.len()..];
        let previous = stack.env_ptr(slot);
        // SAFETY: slot < envc.
        unsafe { *stack.envp.add(slot) = build(strings, old, ours) };
        return (stack, Edit::Replaced { slot, previous });
    }
    if let Some(slot) = borrow {
        let previous = stack.env_ptr(slot);
        // SAFETY: slot < envc.
        unsafe { *stack.envp.add(slot) = build(strings, b"", ours) };
        return (stack, Edit::Replaced { slot, previous });
    }
    let entry = build(strings, b"", ours);
    // SAFETY: the caller vouches for the gap; nothing points into the old arrays yet.
    let moved = unsafe { stack.insert_env(entry) };
    (moved, Edit::Inserted { slot: moved.envc - 1 })
}

/// Arms the trampoline for `edit` on the final stack layout: `AT_ENTRY` now leads through the shim.
pub fn arm_trampoline(stack: &Stack, edit: &Edit) {
    let (slot, restore) = match *edit {
        Edit::Replaced { slot, previous } => (slot, previous as usize),
        Edit::Inserted { slot } => (slot, EMPTY_ENTRY.as_ptr() as usize),
    };
    let Some(aux_entry) = stack.aux_slot(AT_ENTRY) else {
        return;
    };
    // SAFETY: slot < envc and `aux_entry` points into the auxv.
    unsafe {
        let slot_addr = stack.envp.add(slot);
        SLOT.store(slot_addr as usize, Relaxed);
        INSTALLED.store(*slot_addr as usize, Relaxed);
        RESTORE.store(restore, Relaxed);
        ENVP.store(stack.envp as usize, Relaxed);
        AUX_ENTRY.store(aux_entry as usize, Relaxed);
        ENTRY.store(*aux_entry, Relaxed);
        *aux_entry = ld_shim_entry_trampoline as *const () as usize;
    }
}

/// Called by the entry trampoline after the loader ran: puts the environment and `AT_ENTRY` back, and returns the
/// program's real entry point.
pub extern "C" fn restore() -> usize {
    let installed = INSTALLED.load(Relaxed);
    let restore = RESTORE.load(Relaxed);
    let slot = SLOT.load(Relaxed) as *mut usize;
    // SAFETY: the addresses were taken from the live initial stack, which the loader keeps; the envp array is
    // NULL-terminated.
    unsafe {
        if *slot == installed {
            *slot = restore;
        } else {
            let mut at = ENVP.load(Relaxed) as *mut usize;
            while *at != 0 {
                if *at == installed {
                    *at = restore;
                    break;
                }
                at = at.add(1);
            }
        }
        let aux_entry = AUX_ENTRY.load(Relaxed) as *mut usize;
        if *aux_entry == ld_shim_entry_trampoline as *const () as usize {
            *aux_entry = ENTRY.load(Relaxed);
        }
    }
    ENTRY.load(Relaxed)
}
