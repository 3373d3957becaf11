//! The initial process stack the kernel built: `argc, argv[], NULL, envp[], NULL, auxv[]`, read in place and, when
//! the shim must add an environment entry, rewritten one slot larger just below where it was.

use core::ptr;

pub const AT_NULL: usize = 0;
pub const AT_PHDR: usize = 3;
pub const AT_PHNUM: usize = 5;
pub const AT_PAGESZ: usize = 6;
pub const AT_BASE: usize = 7;
pub const AT_ENTRY: usize = 9;
pub const AT_SECURE: usize = 23;
pub const AT_EXECFN: usize = 31;

const WORD: usize = core::mem::size_of::<usize>();

/// How far the block moves down when a slot is inserted: 16 bytes keeps the stack pointer 16-byte aligned as every
/// supported ABI requires at process entry.
const SHIFT_BYTES: usize = 16;

/// Pointers into the initial stack.
#[derive(Debug, Clone, Copy)]
pub struct Stack {
    /// Points at argc.
    pub sp: *mut usize,
    pub argc: usize,
    pub argv: *mut *const u8,
    pub envp: *mut *const u8,
    pub envc: usize,
    /// `(type, value)` pairs, ending with `AT_NULL`.
    pub auxv: *mut usize,
}

impl Stack {
    /// Reads the layout at `sp`.
    ///
    /// # Safety
    /// `sp` must be the stack pointer the kernel passed to the entry point.
    pub unsafe fn parse(sp: *mut usize) -> Self {
        // SAFETY: the kernel's layout: argc, then argc pointers and a NULL, then the environment and a NULL, then
        // the auxiliary vector; all words are readable.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1).cast::<*const u8>();
            let envp = argv.add(argc + 1);
            let mut envc = 0;
            while !(*envp.add(envc)).is_null() {
                envc += 1;
            }
            let auxv = envp.add(envc + 1).cast::<usize>();
            Self { sp, argc, argv, envp, envc, auxv }
        }
    }

    /// The environment entry pointer in slot `index`.
    pub fn env_ptr(&self, index: usize) -> *const u8 {
        debug_assert!(index < self.envc);
        // SAFETY: index < envc.
        unsafe { *self.envp.add(index) }
    }

    /// Returns true if and only if `envp[index]` starts with `prefix`; reads no further than the prefix (or the
    /// NUL that ends a shorter entry), so rejecting an entry costs a byte or two.
    pub fn env_starts_with(&self, index: usize, prefix: &[u8]) -> bool {
        let entry = self.env_ptr(index);
        for (at, &want) in prefix.iter().enumerate() {
            // SAFETY: the string is NUL-terminated and `want` is never NUL, so we stop at or before its end.
            if unsafe { *entry.add(at) } != want {
                return false;
            }
        }
        true
    }

    /// `envp[index]` (`NAME=value`) without its NUL.
    pub fn env(&self, index: usize) -> &'static [u8] {
        // SAFETY: environment strings are NUL-terminated and live for the process.
        unsafe { c_bytes(self.env_ptr(index)) }
    }

    /// The first environment entry named `name`: its slot and value (what `getenv` returns).
    pub fn getenv(&self, name: &[u8]) -> Option<(usize, &'static [u8])> {
        (0..self.envc).find_map(|index| {
            if !self.env_starts_with(index, name) {
                return None;
            }
            match self.env(index).strip_prefix(name) {
                Some([b'=', value @ ..]) => Some((index, value)),
                _ => None,
            }
        })
    }

    /// Address of the value of the first auxv entry of type `kind`.
    pub fn aux_slot(&self, kind: usize) -> Option<*mut usize> {
        let mut at = self.auxv;
        // SAFETY: the vector ends with AT_NULL, and each entry is two words.
        unsafe {
            while *at != AT_NULL {
                if *at == kind {
                    return Some(at.add(1));
                }
                at = at.add(2);
            }
        }
        None
    }

    /// The value of auxv entry `kind`.
    pub fn aux(&self, kind: usize) -> Option<usize> {
        // SAFETY: `aux_slot` returns a pointer into the vector.
        self.aux_slot(kind).map(|slot| unsafe { *slot })
    }

    /// Rewrites the block 16 bytes lower with `entry` appended to the environment; returns the new layout. The auxv
    /// keeps its contents; the strings stay where they are.
    ///
    /// # Safety
    /// The 16 bytes below `sp` must be unused (the entry point leaves that gap), and nothing may hold pointers into
    /// the old argv/envp/auxv arrays afterwards.
    pub unsafe fn insert_env(&self, entry: *const u8) -> Self {
        let shift_words = SHIFT_BYTES / WORD;
        let new_sp = self.sp.wrapping_sub(shift_words);
        // Word index of the environment's NULL in the old block; argc, argv and envp move as they are.
        let env_null = 1 + self.argc + 1 + self.envc;
        // SAFETY: every destination lies below its source (see the ordering argument in the comments), and the
        // range below `sp` is the gap the entry point left.
        unsafe {
            // Destinations are lower than sources, so a forward copy never reads an overwritten word.
            for index in 0..env_null {
                ptr::write(new_sp.add(index), ptr::read(self.sp.add(index)));
            }
            ptr::write(new_sp.add(env_null), entry as usize);
            ptr::write(new_sp.add(env_null + 1), 0);
            let mut index = 0;
            loop {
                let kind = ptr::read(self.auxv.add(index));
                let value = ptr::read(self.auxv.add(index + 1));
                ptr::write(new_sp.add(env_null + 2 + index), kind);
                ptr::write(new_sp.add(env_null + 3 + index), value);
                if kind == AT_NULL {
                    break;
                }
                index += 2;
            }
            Self::parse(new_sp)
        }
    }
}

/// The bytes of a NUL-terminated string.
///
/// # Safety
/// `ptr` must point at a NUL-terminated string that lives for the process.
pub unsafe fn c_bytes(ptr: *const u8) -> &'static [u8] {
    let mut len = 0;
    // SAFETY: the string is NUL-terminated.
    unsafe {
        while *ptr.add(len) != 0 {
            len += 1;
        }
        core::slice::from_raw_parts(ptr, len)
    }
}
