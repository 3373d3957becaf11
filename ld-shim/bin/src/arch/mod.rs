//! Everything that differs per architecture: the entry point with its self-relocation pass, raw syscalls, the
//! jump to the real loader and the entry trampoline. Each architecture file is self-contained and exports the same
//! items; the rest of the shim is portable.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

#[cfg(target_arch = "x86")]
mod x86;
#[cfg(target_arch = "x86")]
pub use x86::*;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;

// The note that marks a file as ld-shim (see `ld_shim::elf::is_shim`): the shim refuses to load a loader that
// carries it, which stops `NIX_LD` pointing at the shim from chain-loading itself forever.
core::arch::global_asm!(
    ".pushsection .note.fhskit.ld-shim,\"a\"",
    ".balign 4",
    ".long 7",
    ".long 8",
    ".long 0x4853444c",
    ".asciz \"fhskit\"",
    ".balign 4",
    ".asciz \"ld-shim\"",
    ".balign 4",
    ".popsection",
);
