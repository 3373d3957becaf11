//! aarch64: `_start` (assembly only: it applies the `R_AARCH64_RELATIVE` relocations before any Rust code runs, so
//! no Rust code ever reads an unrelocated pointer or calls through the GOT), `syscall` through `svc 0`, the jump to
//! the real loader and the entry trampoline.

use core::arch::{asm, global_asm};

/// Syscall numbers (`include/uapi/asm-generic/unistd.h`).
pub mod nr {
    pub const OPENAT: usize = 56;
    pub const CLOSE: usize = 57;
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const PREAD64: usize = 67;
    pub const READLINKAT: usize = 78;
    pub const EXIT_GROUP: usize = 94;
    pub const MUNMAP: usize = 215;
    pub const EXECVE: usize = 221;
    pub const MMAP: usize = 222;
    pub const STATX: usize = 291;
}

/// `mmap`'s offset argument is in bytes here.
pub const MMAP_OFFSET_UNIT: usize = 1;

global_asm!(
    ".globl _start",
    ".type _start,%function",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    // x19 keeps the kernel's stack pointer (it points at argc).
    "mov x19, sp",
    // The file is linked at address 0, so the run-time address of its ELF header is the load bias (x8).
    "adrp x8, __ehdr_start",
    "add x8, x8, :lo12:__ehdr_start",
    "adrp x9, _DYNAMIC",
    "add x9, x9, :lo12:_DYNAMIC",
    "mov x10, #0",
    "mov x11, #0",
    // Find DT_RELA (7) and DT_RELASZ (8).
    "2:",
    "ldr x12, [x9]",
    "cbz x12, 4f",
    "cmp x12, #7",
    "b.ne 3f",
    "ldr x10, [x9, #8]",
    "3:",
    "cmp x12, #8",
    "b.ne 5f",
    "ldr x11, [x9, #8]",
    "5:",
    "add x9, x9, #16",
    "b 2b",
    "4:",
    "add x10, x10, x8",
    "add x11, x11, x10",
    // Apply each R_AARCH64_RELATIVE (1027): *(bias + offset) = bias + addend. Anything else stops here.
    "6:",
    "cmp x10, x11",
    "b.hs 7f",
    "ldr w12, [x10, #8]",
    "cmp w12, #1027",
    "b.ne 8f",
    "ldr x13, [x10, #16]",
    "add x13, x13, x8",
    "ldr x14, [x10]",
    "str x13, [x14, x8]",
    "add x10, x10, #24",
    "b 6b",
    "8:",
    "brk #0",
    "7:",
    "mov x0, x19",
    // Leave room above our frames so that an environment slot can be inserted below argc later.
    "sub x12, x19, #256",
    "and sp, x12, #-16",
    "bl {main}",
    "brk #1",
    main = sym crate::shim_main,
);

/// Performs a raw syscall.
///
/// # Safety
/// The arguments must be valid for syscall `nr` (pointers to memory of the right size and mutability).
#[inline]
pub unsafe fn syscall(nr: usize, args: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; `svc 0` clobbers only x0.
    unsafe {
        asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") args[0] as isize => ret,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
            in("x5") args[5],
            options(nostack),
        );
    }
    ret
}

/// Jumps to the real loader's entry with the stack pointer at `sp` (argc), as the kernel would.
///
/// # Safety
/// `entry` must be the mapped loader's entry point and `sp` a valid initial process stack.
pub unsafe fn jump(entry: usize, sp: *mut usize) -> ! {
    // SAFETY: the caller vouches for both; x0 = 0 tells the loader no termination function was registered.
    unsafe {
        asm!(
            "mov sp, x9",
            "mov x0, xzr",
            "br x10",
            in("x9") sp,
            in("x10") entry,
            options(noreturn),
        )
    }
}

// The program's entry as ld.so sees it (`AT_ENTRY`): runs `crate::environ::restore` and continues at the real entry
// it returns. ld.so passes `_dl_fini` in x0 and the process stack in sp; both are preserved.
global_asm!(
    ".globl ld_shim_entry_trampoline",
    ".hidden ld_shim_entry_trampoline",
    ".type ld_shim_entry_trampoline,%function",
    "ld_shim_entry_trampoline:",
    "stp x0, x30, [sp, #-16]!",
    "bl {restore}",
    "mov x16, x0",
    "ldp x0, x30, [sp], #16",
    "br x16",
    restore = sym crate::environ::restore,
);
