//! Bounded byte strings for paths and environment strings: the shim has no allocator, so every string it builds
//! has a bound, and exceeding it is an error the caller reports, never a truncation.
//!
//! [`Buf`] is one fixed-capacity buffer. [`Strings`] packs many strings one after another into one block: the shim
//! builds its strings there so that, on every program start, they cost a page fault only where the used part of the
//! block reaches a new page, rather than one or two faults per separate buffer. Storage starts uninitialised:
//! zeroing it would touch (and fault in) every page.

use core::ffi::CStr;
use core::mem::MaybeUninit;

/// The string did not fit its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// A byte string of at most `N - 1` bytes plus room for a terminating NUL.
// `len` first: a short string then touches one page, not the buffer's first and last.
#[repr(C)]
pub struct Buf<const N: usize> {
    /// Invariant: `bytes[..len]` is initialised, and so is `bytes[len]` (a NUL) when `len > 0`.
    len: usize,
    bytes: [MaybeUninit<u8>; N],
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
        Self { len: 0, bytes: [const { MaybeUninit::uninit() }; N] }
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

/// Strings kept one after another in one block of memory, each followed by a NUL. A string is built at the end of
/// the block ([`Strings::build`]) and, once kept, never changes again, so it can be borrowed for the block's whole
/// lifetime while later strings are built.
#[derive(Debug)]
pub struct Strings<'a> {
    /// The unused rest of the block.
    space: &'a mut [MaybeUninit<u8>],
}

/// A kept string: its bytes, followed in memory by a NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Str<'a> {
    with_nul: &'a [u8],
}

impl<'a> Str<'a> {
    /// The bytes, without the NUL.
    pub fn bytes(self) -> &'a [u8] {
        &self.with_nul[..self.with_nul.len() - 1]
    }

    /// The string as a C string; fails if it holds a NUL itself.
    pub fn c_str(self) -> Result<&'a CStr, TooLong> {
        CStr::from_bytes_with_nul(self.with_nul).map_err(|_| TooLong)
    }
}

/// The string being built at the end of a [`Strings`] block, bounded by the room it was given.
#[derive(Debug)]
pub struct Builder<'s> {
    space: &'s mut [MaybeUninit<u8>],
    /// Invariant: `space[..len]` is initialised and `space[len]` is a NUL (so `len < space.len()`).
    len: usize,
}

impl Builder<'_> {
    /// Appends `bytes`, leaving room for the NUL.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        let end = self.len.checked_add(bytes.len()).ok_or(TooLong)?;
        if end >= self.space.len() {
            return Err(TooLong);
        }
        for (slot, &byte) in self.space[self.len..end].iter_mut().zip(bytes) {
            slot.write(byte);
        }
        self.space[end].write(0);
        self.len = end;
        Ok(())
    }

    /// Appends what `fill` writes into the free room (all but the byte kept for the NUL); `fill` returns how many
    /// bytes it wrote, from the start of the room it was given.
    pub fn fill_with<E>(
        &mut self,
        fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<usize, E>,
    ) -> Result<(), E> {
        let room_end = self.space.len() - 1;
        let written = fill(&mut self.space[self.len..room_end])?;
        self.len = (self.len + written).min(room_end);
        self.space[self.len].write(0);
        Ok(())
    }

    /// Number of bytes so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns true if and only if nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops everything after the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            self.space[len].write(0);
        }
    }

    /// The bytes from `start` to the end as a C string (for a syscall on a part being built); fails if they hold a
    /// NUL.
    pub fn c_str_from(&self, start: usize) -> Result<&CStr, TooLong> {
        let start = start.min(self.len);
        // SAFETY: `space[..=len]` is initialised (the invariant); MaybeUninit<u8> has u8's layout.
        let with_nul = unsafe {
            core::slice::from_raw_parts(self.space[start..].as_ptr().cast::<u8>(), self.len - start + 1)
        };
        CStr::from_bytes_with_nul(with_nul).map_err(|_| TooLong)
    }
}

impl<'a> Strings<'a> {
    /// Strings in `space`.
    pub fn new(space: &'a mut [MaybeUninit<u8>]) -> Self {
        Self { space }
    }

    /// Builds a string of at most `max` bytes at the end of the block with `build` and keeps it if `build`
    /// succeeds; on failure the room is reused. Fails with [`TooLong`] (converted) when the block is full.
    pub fn build<E: From<TooLong>>(
        &mut self,
        max: usize,
        build: impl FnOnce(&mut Builder<'_>) -> Result<(), E>,
    ) -> Result<Str<'a>, E> {
        let room = max.saturating_add(1).min(self.space.len());
        if room == 0 {
            return Err(TooLong.into());
        }
        let mut builder = Builder { space: &mut self.space[..room], len: 0 };
        builder.space[0].write(0);
        build(&mut builder)?;
        let len = builder.len;
        let (kept, rest) = core::mem::take(&mut self.space).split_at_mut(len + 1);
        self.space = rest;
        // SAFETY: the builder initialised `kept` (its bytes and the NUL after them).
        let with_nul = unsafe { core::slice::from_raw_parts(kept.as_ptr().cast::<u8>(), kept.len()) };
        Ok(Str { with_nul })
    }

    /// Keeps the concatenation of `parts`.
    pub fn concat(&mut self, parts: &[&[u8]]) -> Result<Str<'a>, TooLong> {
        self.build(usize::MAX, |builder| parts.iter().try_for_each(|part| builder.push(part)))
    }

    /// Bytes left in the block.
    pub fn room(&self) -> usize {
        self.space.len()
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

    #[test]
    fn strings_are_kept_one_after_another_and_stay_unchanged() {
        let mut block = [MaybeUninit::<u8>::uninit(); 32];
        let mut strings = Strings::new(&mut block);
        let a = strings.concat(&[b"/r", b"/etc"]).unwrap();
        let b = strings.concat(&[b"x"]).unwrap();
        assert_eq!((a.bytes(), b.bytes()), (&b"/r/etc"[..], &b"x"[..]));
        assert_eq!(a.c_str().unwrap(), c"/r/etc");
        assert_eq!(strings.room(), 32 - 7 - 2);
        // A failed build gives its room back.
        let failed: Result<Str<'_>, TooLong> = strings.build(8, |builder| {
            builder.push(b"abc")?;
            Err(TooLong)
        });
        assert!(failed.is_err());
        assert_eq!(strings.room(), 23);
        assert_eq!(strings.build(3, |builder| builder.push(b"abcd")), Err(TooLong));
        let c = strings
            .build(16, |builder| {
                builder.push(b"/a")?;
                let mark = builder.len();
                builder.push(b":/b")?;
                assert_eq!(builder.c_str_from(mark + 1).unwrap(), c"/b");
                builder.truncate(mark);
                builder.fill_with(|room| {
                    room[0].write(b'!');
                    Ok::<usize, TooLong>(1)
                })
            })
            .unwrap();
        assert_eq!(c.bytes(), b"/a!");
        assert_eq!(strings.concat(&[b"\0"]).unwrap().c_str(), Err(TooLong));
        assert_eq!((a.bytes(), b.bytes()), (&b"/r/etc"[..], &b"x"[..]));
        // The block runs out.
        assert_eq!(strings.concat(&[&[b'z'; 20]]), Err(TooLong));
        let mut empty = Strings::new(&mut []);
        assert_eq!(empty.concat(&[]), Err(TooLong));
    }
}
