//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp`, which the compiler emits calls to and which no libc provides
//! here. On x86 they are `rep movsb`/`rep stosb` (fast on every CPU with ERMSB); the byte loops use volatile
//! accesses so that the optimiser cannot turn them back into calls to themselves.

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
use core::arch::asm;

/// # Safety
/// `dest` and `src` must be valid for `n` bytes and must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller vouches for the ranges; rep movsb copies forwards with the direction flag clear (ABI).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _, options(nostack, preserves_flags));
    }
    #[cfg(target_arch = "x86")]
    // SAFETY: as above; esi is reserved by LLVM on i686, so it is swapped in and restored around the copy.
    unsafe {
        asm!(
            "xchg esi, {src}",
            "rep movsb",
            "mov esi, {src}",
            src = inout(reg) src => _,
            inout("ecx") n => _,
            inout("edi") dest => _,
            options(nostack, preserves_flags),
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    // SAFETY: the caller vouches for the ranges.
    unsafe {
        for i in 0..n {
            core::ptr::write_volatile(dest.add(i), core::ptr::read_volatile(src.add(i)));
        }
    }
    dest
}

/// # Safety
/// `dest` and `src` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize) <= (src as usize) || (dest as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: copying forwards is correct when the destination starts at or before the source.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: the caller vouches for the ranges; copying backwards is correct when the destination is higher.
    unsafe {
        let mut i = n;
        while i > 0 {
            i -= 1;
            core::ptr::write_volatile(dest.add(i), core::ptr::read_volatile(src.add(i)));
        }
    }
    dest
}

/// # Safety
/// `dest` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, value: i32, n: usize) -> *mut u8 {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    // SAFETY: the caller vouches for the range; rep stosb stores forwards with the direction flag clear (ABI).
    unsafe {
        asm!("rep stosb", inout("ecx") n => _, inout("edi") dest => _, in("al") value as u8, options(nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    // SAFETY: the caller vouches for the range.
    unsafe {
        for i in 0..n {
            core::ptr::write_volatile(dest.add(i), value as u8);
        }
    }
    dest
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller vouches for the ranges.
        let (x, y) = unsafe { (core::ptr::read_volatile(a.add(i)), core::ptr::read_volatile(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` must point at a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller vouches for the terminating NUL.
    unsafe {
        while core::ptr::read_volatile(s.add(n)) != 0 {
            n += 1;
        }
    }
    n
}
