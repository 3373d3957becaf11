//! A fixed-capacity byte buffer for paths and environment strings: the shim has no allocator, so every string it
//! builds has a bound, and exceeding it is an error the caller reports, never a truncation.

/// The string did not fit its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// A byte string of at most `N - 1` bytes plus room for a terminating NUL.
#[derive(Debug)]
pub struct Buf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Buf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self { bytes: [0; N], len: 0 }
    }

    /// Appends `bytes`, leaving room for the NUL.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        let end = self.len.checked_add(bytes.len()).ok_or(TooLong)?;
        if end >= N {
            return Err(TooLong);
        }
        self.bytes[self.len..end].copy_from_slice(bytes);
        // Keeps `bytes[len] == 0`, so the contents are always a C string.
        self.bytes[end] = 0;
        self.len = end;
        Ok(())
    }

    /// The bytes pushed so far (without a NUL).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
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
        self.bytes[0] = 0;
    }

    /// The contents followed by a NUL, for syscalls; fails if the contents hold a NUL themselves.
    pub fn as_c_str(&self) -> Result<&core::ffi::CStr, TooLong> {
        core::ffi::CStr::from_bytes_with_nul(&self.bytes[..=self.len]).map_err(|_| TooLong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_keeps_room_for_the_nul() {
        let mut buf = Buf::<8>::new();
        buf.push(b"abc").unwrap();
        buf.push(b"defg").unwrap();
        assert_eq!(buf.push(b"h"), Err(TooLong));
        assert_eq!(buf.as_bytes(), b"abcdefg");
        assert_eq!(buf.as_c_str().unwrap().to_bytes(), b"abcdefg");
        buf.clear();
        assert!(buf.is_empty());
        buf.push(b"a\0b").unwrap();
        assert_eq!(buf.as_c_str(), Err(TooLong));
    }
}
