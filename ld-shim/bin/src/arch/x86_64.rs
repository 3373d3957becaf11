//! x86-64: `_start` (assembly only: it applies the `R_X86_64_RELATIVE` relocations before any Rust code runs, so no
//! Rust code ever reads an unrelocated pointer or calls through the GOT), `syscall`, the jump to the real loader
//! and the entry trampoline.

use core::arch::{asm, global_asm};

/// Syscall numbers (`arch/x86/entry/syscalls/syscall_64.tbl`).
pub mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const MMAP: usize = 9;
    pub const MUNMAP: usize = 11;
    pub const PREAD64: usize = 17;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
    pub const OPENAT: usize = 257;
    pub const READLINKAT: usize = 267;
    pub const STATX: usize = 332;
}

/// `mmap`'s offset argument is in bytes here.
pub const MMAP_OFFSET_UNIT: usize = 1;

global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    // rbx keeps the kernel's stack pointer (it points at argc).
    "mov rbx, rsp",
    // The file is linked at address 0, so the run-time address of its ELF header is the load bias.
    "lea r8, [rip + __ehdr_start]",
    "lea rcx, [rip + _DYNAMIC]",
    "xor esi, esi",
    "xor edx, edx",
    // Find DT_RELA (7) and DT_RELASZ (8).
    "2:",
    "mov rax, [rcx]",
    "test rax, rax",
    "jz 4f",
    "cmp rax, 7",
    "jne 3f",
    "mov rsi, [rcx + 8]",
    "3:",
    "cmp rax, 8",
    "jne 5f",
    "mov rdx, [rcx + 8]",
    "5:",
    "add rcx, 16",
    "jmp 2b",
    "4:",
    "add rsi, r8",
    "add rdx, rsi",
    // Apply each R_X86_64_RELATIVE (8): *(bias + offset) = bias + addend. The link produces no other type; a test
    // checks that, and anything else stops here rather than running with a wrong pointer.
    "6:",
    "cmp rsi, rdx",
    "jae 7f",
    "cmp dword ptr [rsi + 8], 8",
    "jne 8f",
    "mov rax, [rsi + 16]",
    "add rax, r8",
    "mov rdi, [rsi]",
    "mov [rdi + r8], rax",
    "add rsi, 24",
    "jmp 6b",
    "8:",
    "ud2",
    "7:",
    "mov rdi, rbx",
    // Leave room above our frames so that an environment slot can be inserted below argc later.
    "lea rsp, [rbx - 256]",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym crate::shim_main,
);

/// Performs a raw syscall.
///
/// # Safety
/// The arguments must be valid for syscall `nr` (pointers to memory of the right size and mutability).
#[inline]
pub unsafe fn syscall(nr: usize, args: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; `syscall` clobbers only rcx and r11 besides rax.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
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
    // SAFETY: the caller vouches for both; rdx = 0 tells the loader no termination function was registered.
    unsafe {
        asm!(
            "mov rsp, rdi",
            "xor edx, edx",
            "jmp rsi",
            in("rdi") sp,
            in("rsi") entry,
            options(noreturn),
        )
    }
}

// The program's entry as ld.so sees it (`AT_ENTRY`): runs `crate::environ::restore` and continues at the real entry
// it returns. ld.so passes `_dl_fini` in rdx and the process stack in rsp; both are preserved.
global_asm!(
    ".globl ld_shim_entry_trampoline",
    ".hidden ld_shim_entry_trampoline",
    ".type ld_shim_entry_trampoline,@function",
    "ld_shim_entry_trampoline:",
    "push rdx",
    "sub rsp, 8",
    "call {restore}",
    "add rsp, 8",
    "pop rdx",
    "jmp rax",
    restore = sym crate::environ::restore,
);
