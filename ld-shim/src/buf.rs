//! A fixed-capacity byte buffer for paths and environment strings: the shim has no allocator, so every string it
//! builds has a bound, and exceeding it is an error the caller reports, never a truncation.
//!
//! The storage starts uninitialised: the shim keeps several of these on its stack, and zeroing them would touch
//! (and fault in) stack pages on every program start.

use core::ffi::CStr;
use core::mem::MaybeUninit;

/// The string did not fit its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// A byte string of at most `N - 1` bytes plus room for a terminating NUL.
pub struct Buf<const N: usize> {
    bytes: [MaybeUninit<u8>; N],
    /// Invariant: `bytes[..len]` is initialised, and so is `bytes[len]` (a NUL) when `len > 0`.
    len: usize,
}

impl<const N: usize> core::fmt::Debug for Buf<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Buf").field("bytes", &self.as_bytes()).finish()
    }
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Buf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self { bytes: [const { MaybeUninit::uninit() }; N], len: 0 }
    }

    /// Appends `bytes`, leaving room for the NUL.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        let end = self.len.checked_add(bytes.len()).ok_or(TooLong)?;
        if end >= N {
            return Err(TooLong);
        }
        for (slot, &byte) in self.bytes[self.len..end].iter_mut().zip(bytes) {
            slot.write(byte);
        }
        // Keeps `bytes[len] == 0`, so the contents are always a C string.
        self.bytes[end].write(0);
        self.len = end;
        Ok(())
    }

    /// The bytes pushed so far (without a NUL).
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `bytes[..len]` is initialised (the invariant); MaybeUninit<u8> has u8's layout.
        unsafe { core::slice::from_raw_parts(self.bytes.as_ptr().cast::<u8>(), self.len) }
    }

    /// Number of bytes pushed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns true if and only if nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the contents.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The contents followed by a NUL, for syscalls; fails if the contents hold a NUL themselves.
    pub fn as_c_str(&self) -> Result<&CStr, TooLong> {
        if self.len == 0 {
            return Ok(c"");
        }
        // SAFETY: `bytes[..=len]` is initialised when `len > 0` (the invariant).
        let with_nul = unsafe { core::slice::from_raw_parts(self.bytes.as_ptr().cast::<u8>(), self.len + 1) };
        CStr::from_bytes_with_nul(with_nul).map_err(|_| TooLong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_keeps_room_for_the_nul() {
        let mut buf = Buf::<8>::new();
        assert_eq!(buf.as_c_str().unwrap(), c"");
        buf.push(b"abc").unwrap();
        buf.push(b"defg").unwrap();
        assert_eq!(buf.push(b"h"), Err(TooLong));
        assert_eq!(buf.as_bytes(), b"abcdefg");
        assert_eq!(buf.as_c_str().unwrap().to_bytes(), b"abcdefg");
        buf.clear();
        assert!(buf.is_empty());
        buf.push(b"ab").unwrap();
        assert_eq!(buf.as_c_str().unwrap(), c"ab");
        buf.push(b"\0c").unwrap();
        assert_eq!(buf.as_c_str(), Err(TooLong));
    }
}
