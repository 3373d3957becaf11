//! Opens the real ld.so, checks it with [`ld_shim::elf::plan`], and maps it as the kernel's `load_elf_binary` maps
//! an interpreter: reserve the whole span, map each `PT_LOAD` at `bias + p_vaddr`, zero the bss tail of the last
//! file page and map the rest of the bss anonymously, relative to its own segment.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use ld_shim::elf::{self, LoadError, PF_R, PF_W, PF_X, Plan, page_down, page_up};
use ld_shim::system::NATIVE;

use crate::sys::{self, Errno};

/// Bytes read up front: the ELF header, the program headers and, in practice, the notes.
const HEADER_BYTES: usize = 2048;

/// Why the loader could not be used.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Os(Errno),
    Elf(LoadError),
    NotRegular,
}

impl Failure {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Os(errno) => errno.text(),
            Self::Elf(error) => error.reason(),
            Self::NotRegular => "not a regular file",
        }
    }
}

impl From<Errno> for Failure {
    fn from(errno: Errno) -> Self {
        Self::Os(errno)
    }
}

impl From<LoadError> for Failure {
    fn from(error: LoadError) -> Self {
        Self::Elf(error)
    }
}

/// An open, checked loader.
pub struct Checked {
    fd: usize,
    plan: Plan,
}

impl Drop for Checked {
    fn drop(&mut self) {
        sys::close(self.fd);
    }
}

/// The mapped loader.
#[derive(Debug, Clone, Copy)]
pub struct Mapped {
    pub bias: usize,
    pub entry: usize,
}

/// Opens `path` and checks that it is a loader for this shim's system, and not the shim itself.
pub fn open(path: &CStr, page: usize) -> Result<Checked, Failure> {
    let fd = sys::open(path)?;
    let guard = FdGuard(fd);
    let stat = sys::fstat(fd)?;
    if !stat.is_file() {
        return Err(Failure::NotRegular);
    }
    let mut buffer = [MaybeUninit::<u8>::uninit(); HEADER_BYTES];
    let header = sys::read_full(fd, &mut buffer)?;
    let len = header.len();
    let plan = elf::plan(header, stat.size, NATIVE.machine, page)?;
    for &(offset, size) in plan.notes() {
        let marked = match offset.checked_add(size) {
            Some(end) if end <= len => elf::notes_mark_shim(&header[offset..end]),
            _ => {
                let mut notes = [0u8; 256];
                let want = size.min(notes.len());
                let got = sys::pread(fd, &mut notes[..want], offset as u64)?;
                elf::notes_mark_shim(&notes[..got])
            }
        };
        if marked {
            return Err(LoadError::IsShim.into());
        }
    }
    core::mem::forget(guard);
    Ok(Checked { fd, plan })
}

struct FdGuard(usize);

impl Drop for FdGuard {
    fn drop(&mut self) {
        sys::close(self.0);
    }
}

fn prot(flags: u32) -> usize {
    let mut prot = sys::PROT_NONE;
    if flags & PF_R != 0 {
        prot |= sys::PROT_READ;
    }
    if flags & PF_W != 0 {
        prot |= sys::PROT_WRITE;
    }
    if flags & PF_X != 0 {
        prot |= sys::PROT_EXEC;
    }
    prot
}

impl Checked {
    /// Maps the loader and closes the file.
    pub fn map(self, page: usize) -> Result<Mapped, Failure> {
        let plan = &self.plan;
        let overflow = Failure::Elf(LoadError::MisalignedSegment);
        // Honour p_align like the kernel does for ET_DYN: reserve extra, then trim to an aligned start.
        let slack = plan.align - page;
        let reserve = plan.span.checked_add(slack).ok_or(overflow)?;
        // SAFETY: a fresh, non-fixed reservation replaces nothing.
        let base = unsafe {
            sys::mmap(
                0,
                reserve,
                sys::PROT_NONE,
                sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_NORESERVE,
                usize::MAX,
                0,
            )
        }?;
        let start = if slack == 0 {
            base
        } else {
            let aligned = page_up(base, plan.align).ok_or(overflow)?;
            // SAFETY: both ranges are parts of our own reservation that nothing uses.
            unsafe {
                if aligned > base {
                    sys::munmap(base, aligned - base);
                }
                let end = aligned + plan.span;
                if base + reserve > end {
                    sys::munmap(end, base + reserve - end);
                }
            }
            aligned
        };
        let bias = start.wrapping_sub(plan.first);
        for segment in plan.segments() {
            let prot = prot(segment.flags);
            let addr = bias.wrapping_add(segment.vaddr);
            let map_start = page_down(addr, page);
            let file_end = addr + segment.filesz;
            let mut anon_start = map_start;
            if segment.filesz > 0 {
                let file_map_end = page_up(file_end, page).ok_or(overflow)?;
                // SAFETY: the range lies inside our reservation.
                unsafe {
                    sys::mmap(
                        map_start,
                        file_map_end - map_start,
                        prot,
                        sys::MAP_PRIVATE | sys::MAP_FIXED,
                        self.fd,
                        page_down(segment.offset, page),
                    )
                }?;
                if segment.memsz > segment.filesz && prot & sys::PROT_WRITE != 0 && file_end < file_map_end {
                    // SAFETY: the page tail past the file contents is mapped writable just above and belongs to
                    // this segment's bss.
                    unsafe { core::ptr::write_bytes(file_end as *mut u8, 0, file_map_end - file_end) };
                }
                anon_start = file_map_end;
            }
            let mem_end = page_up(addr + segment.memsz, page).ok_or(overflow)?;
            if mem_end > anon_start {
                // SAFETY: the range lies inside our reservation.
                unsafe {
                    sys::mmap(
                        anon_start,
                        mem_end - anon_start,
                        prot,
                        sys::MAP_PRIVATE | sys::MAP_FIXED | sys::MAP_ANONYMOUS,
                        usize::MAX,
                        0,
                    )
                }?;
            }
        }
        Ok(Mapped { bias, entry: bias.wrapping_add(plan.entry) })
    }
}
