//! Thin wrappers over the raw syscalls the shim needs, returning `Result<_, Errno>`. Runs after relocation only.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use crate::arch::{self, nr};

/// A positive errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub usize);

impl Errno {
    /// strerror-style text for the errors the shim can meet when opening and mapping a file.
    pub fn text(self) -> &'static str {
        match self.0 {
            1 => "operation not permitted",
            2 => "no such file or directory",
            5 => "input/output error",
            9 => "bad file descriptor",
            12 => "cannot allocate memory",
            13 => "permission denied",
            14 => "bad address",
            19 => "no such device",
            20 => "not a directory",
            21 => "is a directory",
            22 => "invalid argument",
            23 | 24 => "too many open files",
            26 => "text file busy",
            36 => "file name too long",
            40 => "too many levels of symbolic links",
            _ => "unexpected error",
        }
    }
}

/// The string block ran out of room: like an allocation failure.
impl From<ld_shim::buf::TooLong> for Errno {
    fn from(_: ld_shim::buf::TooLong) -> Self {
        Errno(12)
    }
}

pub const O_RDONLY: usize = 0;
pub const O_CLOEXEC: usize = 0o2_000_000;
/// Opening a FIFO for reading blocks until a writer appears (fifo(7)); with this flag it returns at once, and the
/// caller's file-type check rejects it. Regular files ignore it.
pub const O_NONBLOCK: usize = 0o4000;
const AT_FDCWD: isize = -100;
const AT_EMPTY_PATH: usize = 0x1000;

pub const PROT_NONE: usize = 0;
pub const PROT_READ: usize = 1;
pub const PROT_WRITE: usize = 2;
pub const PROT_EXEC: usize = 4;
pub const MAP_PRIVATE: usize = 0x02;
pub const MAP_FIXED: usize = 0x10;
pub const MAP_ANONYMOUS: usize = 0x20;
pub const MAP_NORESERVE: usize = 0x4000;

fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) { Err(Errno(ret.unsigned_abs())) } else { Ok(ret as usize) }
}

/// `openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)`: never blocks, so a FIFO or device at the path
/// cannot hang the program; callers check the file type with [`fstat`].
pub fn open(path: &CStr) -> Result<usize, Errno> {
    let flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check(unsafe { arch::syscall(nr::OPENAT, [AT_FDCWD as usize, path.as_ptr() as usize, flags, 0, 0, 0]) })
}

/// `close(fd)`; errors are irrelevant for a read-only descriptor.
pub fn close(fd: usize) {
    // SAFETY: closing a descriptor takes no pointers.
    unsafe { arch::syscall(nr::CLOSE, [fd, 0, 0, 0, 0, 0]) };
}

/// `read(fd, buf)`, once; returns the filled part.
pub fn read(fd: usize, buf: &mut [MaybeUninit<u8>]) -> Result<&[u8], Errno> {
    // SAFETY: `buf` is writable for its length.
    let n = check(unsafe { arch::syscall(nr::READ, [fd, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0]) })?;
    // SAFETY: the kernel initialised the first `n` bytes (at most `buf.len()`).
    Ok(unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n.min(buf.len())) })
}

/// `read(fd, buf)`, retried until the buffer is full or the file ends; returns the filled part.
pub fn read_full(fd: usize, buf: &mut [MaybeUninit<u8>]) -> Result<&[u8], Errno> {
    let mut done = 0;
    while done < buf.len() {
        let n = read(fd, &mut buf[done..])?.len();
        if n == 0 {
            break;
        }
        done += n;
    }
    // SAFETY: the kernel initialised the first `done` bytes.
    Ok(unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), done) })
}

/// `pread64(fd, buf, offset)`, once.
pub fn pread(fd: usize, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let ptr = buf.as_mut_ptr() as usize;
    #[cfg(target_pointer_width = "64")]
    let args = [fd, ptr, buf.len(), offset as usize, 0, 0];
    // The 32-bit ABI splits the offset into two registers, low word first.
    #[cfg(target_pointer_width = "32")]
    let args = [fd, ptr, buf.len(), offset as u32 as usize, (offset >> 32) as usize, 0];
    // SAFETY: `buf` is writable for its length.
    check(unsafe { arch::syscall(nr::PREAD64, args) })
}

/// `write(fd, bytes)`, retried on short writes, best effort.
pub fn write_fd(fd: usize, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is readable for its length.
        let ret = unsafe { arch::syscall(nr::WRITE, [fd, bytes.as_ptr() as usize, bytes.len(), 0, 0, 0]) };
        match check(ret) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
        }
    }
}

/// `exit_group(code)`.
pub fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exiting takes no pointers.
        unsafe { arch::syscall(nr::EXIT_GROUP, [code, 0, 0, 0, 0, 0]) };
    }
}

/// `mmap`; `offset` must be page-aligned.
///
/// # Safety
/// With `MAP_FIXED`, `addr..addr+len` must not hold anything still in use.
pub unsafe fn mmap(
    addr: usize,
    len: usize,
    prot: usize,
    flags: usize,
    fd: usize,
    offset: usize,
) -> Result<usize, Errno> {
    // SAFETY: the caller vouches for fixed mappings; other mappings only add memory.
    check(unsafe { arch::syscall(nr::MMAP, [addr, len, prot, flags, fd, offset / arch::MMAP_OFFSET_UNIT]) })
}

/// `munmap`.
///
/// # Safety
/// `addr..addr+len` must hold nothing still in use.
pub unsafe fn munmap(addr: usize, len: usize) {
    // SAFETY: the caller vouches that the range is unused.
    unsafe { arch::syscall(nr::MUNMAP, [addr, len, 0, 0, 0, 0]) };
}

/// What the shim needs of `statx`.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub size: u64,
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170_000 == 0o040_000
    }

    pub fn is_file(&self) -> bool {
        self.mode & 0o170_000 == 0o100_000
    }
}

fn statx(dirfd: usize, path: &CStr, flags: usize) -> Result<Stat, Errno> {
    // struct statx is 256 bytes; u64 alignment.
    let mut buf = [0u64; 32];
    const STATX_BASIC_STATS: usize = 0x7ff;
    // SAFETY: `path` is NUL-terminated and `buf` is a writable `struct statx`.
    check(unsafe {
        arch::syscall(
            nr::STATX,
            [dirfd, path.as_ptr() as usize, flags, STATX_BASIC_STATS, buf.as_mut_ptr() as usize, 0],
        )
    })?;
    // Offsets from `struct statx`: uid at 20, mode at 28 (u16), size at 40.
    let word = |at: usize| (buf[at / 8] >> ((at % 8) * 8)) as u32;
    Ok(Stat { uid: word(20), mode: word(28) & 0xffff, size: buf[5] })
}

/// `stat` of a path (following symlinks).
pub fn stat(path: &CStr) -> Result<Stat, Errno> {
    statx(AT_FDCWD as usize, path, 0)
}

/// `fstat` of a descriptor.
pub fn fstat(fd: usize) -> Result<Stat, Errno> {
    statx(fd, c"", AT_EMPTY_PATH)
}

/// `readlink(path)` into `buf`; returns the target.
pub fn readlink<'a>(path: &CStr, buf: &'a mut [MaybeUninit<u8>]) -> Result<&'a [u8], Errno> {
    // SAFETY: `path` is NUL-terminated and `buf` writable for its length.
    let len = check(unsafe {
        arch::syscall(
            nr::READLINKAT,
            [AT_FDCWD as usize, path.as_ptr() as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0],
        )
    })?;
    // SAFETY: the kernel initialised the first `len` bytes (at most `buf.len()`).
    Ok(unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len.min(buf.len())) })
}

/// `execve`; returns only on failure.
///
/// # Safety
/// `argv` and `envp` must be NULL-terminated arrays of NUL-terminated strings.
pub unsafe fn execve(path: &CStr, argv: *const *const u8, envp: *const *const u8) -> Errno {
    // SAFETY: the caller vouches for the arrays.
    let ret =
        unsafe { arch::syscall(nr::EXECVE, [path.as_ptr() as usize, argv as usize, envp as usize, 0, 0, 0]) };
    match check(ret) {
        Err(errno) => errno,
        Ok(_) => Errno(0),
    }
}
