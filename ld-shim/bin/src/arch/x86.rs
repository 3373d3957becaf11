//! i686: `_start` (assembly only: it applies the `R_386_RELATIVE` relocations before any Rust code runs, so no Rust
//! code ever reads an unrelocated pointer), `syscall` through `int 0x80`, the jump to the real loader and the entry
//! trampoline.

use core::arch::{asm, global_asm};

/// Syscall numbers (`arch/x86/entry/syscalls/syscall_32.tbl`).
pub mod nr {
    pub const READ: usize = 3;
    pub const WRITE: usize = 4;
    pub const CLOSE: usize = 6;
    pub const EXECVE: usize = 11;
    pub const MUNMAP: usize = 91;
    pub const PREAD64: usize = 180;
    /// `mmap2`: the offset is in 4096-byte units.
    pub const MMAP: usize = 192;
    pub const EXIT_GROUP: usize = 252;
    pub const OPENAT: usize = 295;
    pub const READLINKAT: usize = 305;
    pub const STATX: usize = 383;
}

/// `mmap2` takes its offset in 4096-byte units.
pub const MMAP_OFFSET_UNIT: usize = 4096;

global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xorl %ebp, %ebp",
    // edi keeps the kernel's stack pointer (it points at argc).
    "movl %esp, %edi",
    "call 2f",
    "2:",
    "popl %ebx",
    "addl $_GLOBAL_OFFSET_TABLE_+(.-2b), %ebx",
    // The file is linked at address 0, so the run-time address of its ELF header is the load bias (ebp).
    "leal __ehdr_start@GOTOFF(%ebx), %ebp",
    "leal _DYNAMIC@GOTOFF(%ebx), %ecx",
    "xorl %esi, %esi",
    "xorl %edx, %edx",
    // Find DT_REL (17) and DT_RELSZ (18).
    "3:",
    "movl (%ecx), %eax",
    "testl %eax, %eax",
    "jz 5f",
    "cmpl $17, %eax",
    "jne 4f",
    "movl 4(%ecx), %esi",
    "4:",
    "cmpl $18, %eax",
    "jne 6f",
    "movl 4(%ecx), %edx",
    "6:",
    "addl $8, %ecx",
    "jmp 3b",
    "5:",
    "addl %ebp, %esi",
    "addl %esi, %edx",
    // Apply each R_386_RELATIVE (8): *(bias + offset) += bias. Anything else stops here (a test checks the link
    // produces none).
    "7:",
    "cmpl %edx, %esi",
    "jae 9f",
    "cmpb $8, 4(%esi)",
    "jne 8f",
    "movl (%esi), %eax",
    "addl %ebp, (%eax,%ebp,1)",
    "addl $8, %esi",
    "jmp 7b",
    "8:",
    "ud2",
    "9:",
    // Leave room above our frames so that an environment slot can be inserted below argc later.
    "leal -256(%edi), %esp",
    "andl $-16, %esp",
    "subl $12, %esp",
    "pushl %edi",
    "call {main}",
    "ud2",
    main = sym crate::shim_main,
    options(att_syntax),
);

/// Performs a raw syscall through `int 0x80`.
///
/// # Safety
/// The arguments must be valid for syscall `nr` (pointers to memory of the right size and mutability).
#[inline]
pub unsafe fn syscall(nr: usize, args: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments. ebx, esi and ebp cannot be asm operands on i686, so the
    // arguments are loaded from the array and those registers are saved and restored around the call.
    unsafe {
        asm!(
            "push ebp",
            "push ebx",
            "push esi",
            "mov ebx, [edi]",
            "mov ecx, [edi + 4]",
            "mov edx, [edi + 8]",
            "mov esi, [edi + 12]",
            "mov ebp, [edi + 20]",
            "mov edi, [edi + 16]",
            "int 0x80",
            "pop esi",
            "pop ebx",
            "pop ebp",
            inlateout("eax") nr as isize => ret,
            inlateout("edi") args.as_ptr() => _,
            lateout("ecx") _,
            lateout("edx") _,
        );
    }
    ret
}

/// Jumps to the real loader's entry with the stack pointer at `sp` (argc), as the kernel would.
///
/// # Safety
/// `entry` must be the mapped loader's entry point and `sp` a valid initial process stack.
pub unsafe fn jump(entry: usize, sp: *mut usize) -> ! {
    // SAFETY: the caller vouches for both; edx = 0 tells the loader no termination function was registered.
    unsafe {
        asm!(
            "mov esp, eax",
            "xor edx, edx",
            "jmp ecx",
            in("eax") sp,
            in("ecx") entry,
            options(noreturn),
        )
    }
}

// The program's entry as ld.so sees it (`AT_ENTRY`): runs `crate::environ::restore` and continues at the real entry
// it returns. ld.so passes `_dl_fini` in edx and the process stack in esp; both are preserved.
global_asm!(
    ".globl ld_shim_entry_trampoline",
    ".hidden ld_shim_entry_trampoline",
    ".type ld_shim_entry_trampoline,@function",
    "ld_shim_entry_trampoline:",
    "pushl %edx",
    "subl $12, %esp",
    "call {restore}",
    "addl $12, %esp",
    "popl %edx",
    "jmp *%eax",
    restore = sym crate::environ::restore,
    options(att_syntax),
);
