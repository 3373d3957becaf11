//! Buffers that live in `.bss` instead of on the stack. A frame larger than a page makes the compiler probe (and so
//! fault in) every page of it on each call, on every program start; a static buffer costs a fault only for the
//! pages actually written. Each buffer is handed out once.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::settings::{ListBuf, PathBuf};

/// Which buffers were handed out, one bit each, kept together so that checking them touches one page.
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// A static value handed out at most once as `&'static mut`; `INDEX` (unique, below 32) names its bit in `TAKEN`.
/// The index is a type parameter rather than a field so that the static stays all-zero and lands in `.bss`.
pub struct Once<T, const INDEX: u32> {
    value: UnsafeCell<T>,
}

// SAFETY: `take` hands the value out at most once, so no two references to it exist.
unsafe impl<T, const INDEX: u32> Sync for Once<T, INDEX> {}

impl<T, const INDEX: u32> Once<T, INDEX> {
    pub const fn new(value: T) -> Self {
        Self { value: UnsafeCell::new(value) }
    }

    /// The value; a second call is a bug and panics.
    #[expect(clippy::mut_from_ref, reason = "the flag makes this the only reference, like a OnceCell's take")]
    pub fn take(&'static self) -> &'static mut T {
        let bit = 1 << INDEX;
        // Load and store rather than fetch_or: the shim is single-threaded, and read-modify-write atomics would
        // pull in aarch64's outline-atomics helpers, which need libc's getauxval.
        let taken = TAKEN.load(Relaxed);
        assert!(taken & bit == 0, "scratch buffer taken twice");
        TAKEN.store(taken | bit, Relaxed);
        // SAFETY: the flag guarantees this is the only reference ever made.
        unsafe { &mut *self.value.get() }
    }
}

pub static LOADER: Once<PathBuf, 0> = Once::new(PathBuf::new());
pub static LIBRARY_LIST: Once<ListBuf, 1> = Once::new(ListBuf::new());
pub static CONFIG_PATH: Once<PathBuf, 2> = Once::new(PathBuf::new());
pub static CONFIG_ROOT: Once<PathBuf, 3> = Once::new(PathBuf::new());
pub static CONFIG_TEXT: Once<[MaybeUninit<u8>; 4096], 4> = Once::new([MaybeUninit::uninit(); 4096]);
pub static SHIM_PATH: Once<PathBuf, 5> = Once::new(PathBuf::new());
pub static LINK: Once<[MaybeUninit<u8>; 4096], 6> = Once::new([MaybeUninit::uninit(); 4096]);
pub static DIRECTORY: Once<PathBuf, 7> = Once::new(PathBuf::new());
pub static MERGED: Once<ListBuf, 8> = Once::new(ListBuf::new());
