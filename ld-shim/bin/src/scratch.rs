//! The block the shim builds its strings in ([`ld_shim::buf::Strings`]): paths, the config file's text, the library
//! path and the `LD_LIBRARY_PATH` entry the loader reads. It lives in `.bss` rather than on the stack (a frame
//! larger than a page makes the compiler probe, and so fault in, every page of it on each call), and packing the
//! strings together costs a page fault only where they reach a new page. It stays mapped for the life of the
//! process, so the environment entry built here outlives the shim.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use ld_shim::buf::Strings;

/// Room for every string of one start: the config path, its text and the loader path (a page each at most), the
/// library path (two pages at most) and the environment entry; a longer environment entry gets its own mapping.
const SIZE: usize = 40 * 1024;

struct Block(UnsafeCell<[MaybeUninit<u8>; SIZE]>);

// SAFETY: the shim is single-threaded and hands the block out once (see `strings`).
unsafe impl Sync for Block {}

static BLOCK: Block = Block(UnsafeCell::new([MaybeUninit::uninit(); SIZE]));

/// The string block.
///
/// # Safety
/// Call at most once per process (`shim_main` does, at start-up): the block is handed out as `&'static mut`.
pub unsafe fn strings() -> Strings<'static> {
    // SAFETY: the caller guarantees this is the only reference ever made.
    Strings::new(unsafe { &mut *BLOCK.0.get() })
}
