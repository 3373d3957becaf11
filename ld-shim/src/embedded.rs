//! The ld-shim executables built by this crate's build script, embedded so that `fhskit shim install` can write them
//! without looking for files: the native one always; on x86-64 also the 32-bit x86 and the aarch64 ones when their
//! Rust targets (and an aarch64 cross linker) were installed at build time.

use crate::system::{self, System};

/// The executable for the system this crate was built for.
#[cfg(ld_shim_native)]
pub const NATIVE: Option<&[u8]> = Some(include_bytes!(env!("LD_SHIM_BIN")));
/// The executable for the system this crate was built for (absent in the nested build of the executable itself).
#[cfg(not(ld_shim_native))]
pub const NATIVE: Option<&[u8]> = None;

/// The 32-bit x86 executable.
#[cfg(ld_shim_i686)]
pub const I686: Option<&[u8]> = Some(include_bytes!(env!("LD_SHIM_BIN_I686")));
/// The 32-bit x86 executable (not built: the i686 target was missing).
#[cfg(not(ld_shim_i686))]
pub const I686: Option<&[u8]> = None;

/// The aarch64 executable.
#[cfg(ld_shim_aarch64)]
pub const AARCH64: Option<&[u8]> = Some(include_bytes!(env!("LD_SHIM_BIN_AARCH64")));
/// The aarch64 executable (not built: the aarch64 target or its cross linker was missing).
#[cfg(not(ld_shim_aarch64))]
pub const AARCH64: Option<&[u8]> = None;

/// Every embedded executable with the system it serves (the extra ones are only ever built next to an x86-64 one).
pub fn builds() -> impl Iterator<Item = (System, &'static [u8])> {
    [(system::NATIVE, NATIVE), (system::I686, I686), (system::AARCH64, AARCH64)]
        .into_iter()
        .filter_map(|(system, bytes)| Some((system, bytes?)))
}
