//! Synthetic ELF images for unit tests: any class and byte order, no section headers, built from segments only,
//! so the reader and the layout engine are tested on big-endian and 32-bit inputs without a cross toolchain.

use crate::raw::*;

/// A dynamically linked executable image: PHDR, INTERP, a read-only LOAD holding the headers, `.interp` and
/// `.dynstr`, a writable LOAD holding `.dynamic` (with `spare` free slots), GNU_STACK.
pub fn image(fmt: Fmt, spare: usize) -> Vec<u8> {
    let phsz = fmt.phdr_size();
    let nph = 6u64;
    let phoff = fmt.ehdr_size();
    let interp_off = phoff + nph * phsz;
    let interp = b"/lib/ld-test.so.1\0";
    let dynstr_off = interp_off + interp.len() as u64;
    let dynstr = b"\0libc.so.6\0/old/rpath\0libtest.so\0";
    let ro_end = dynstr_off + dynstr.len() as u64;
    let base = 0x10000u64;
    let dyn_off = 0x1000u64;
    let entries = [
        Dyn { tag: DT_NEEDED, val: 1 },
        Dyn { tag: DT_RPATH, val: 11 },
        Dyn { tag: DT_STRTAB, val: base + dynstr_off },
        Dyn { tag: DT_STRSZ, val: dynstr.len() as u64 },
    ];
    let dyn_len = (entries.len() + 1 + spare) as u64 * fmt.dyn_size();
    let phdrs = [
        Phdr {
            p_type: PT_PHDR,
            p_flags: PF_R,
            p_offset: phoff,
            p_vaddr: base + phoff,
            p_paddr: base + phoff,
            p_filesz: nph * phsz,
            p_memsz: nph * phsz,
            p_align: 8,
        },
        Phdr {
            p_type: PT_INTERP,
            p_flags: PF_R,
            p_offset: interp_off,
            p_vaddr: base + interp_off,
            p_paddr: base + interp_off,
            p_filesz: interp.len() as u64,
            p_memsz: interp.len() as u64,
            p_align: 1,
        },
        Phdr {
            p_type: PT_LOAD,
            p_flags: PF_R,
            p_offset: 0,
            p_vaddr: base,
            p_paddr: base,
            p_filesz: ro_end.max(0x800),
            p_memsz: ro_end.max(0x800),
            p_align: 0x1000,
        },
        Phdr {
            p_type: PT_LOAD,
            p_flags: PF_R | PF_W,
            p_offset: dyn_off,
            p_vaddr: base + 0x1000,
            p_paddr: base + 0x1000,
            p_filesz: dyn_len,
            p_memsz: dyn_len + 0x40,
            p_align: 0x1000,
        },
        Phdr {
            p_type: PT_DYNAMIC,
            p_flags: PF_R | PF_W,
            p_offset: dyn_off,
            p_vaddr: base + 0x1000,
            p_paddr: base + 0x1000,
            p_filesz: dyn_len,
            p_memsz: dyn_len,
            p_align: 8,
        },
        Phdr { p_type: PT_GNU_STACK, p_flags: PF_R | PF_W, p_align: 16, ..Phdr::default() },
    ];
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF");
    out.push(if fmt.is64 { 2 } else { 1 });
    out.push(if fmt.big { 2 } else { 1 });
    out.push(1);
    out.resize(16, 0);
    fmt.put_u16(&mut out, ET_EXEC);
    fmt.put_u16(&mut out, if fmt.big { EM_S390 } else { EM_X86_64 });
    fmt.put_u32(&mut out, 1);
    fmt.put_word(&mut out, base + 0x800);
    fmt.put_word(&mut out, phoff);
    fmt.put_word(&mut out, 0);
    fmt.put_u32(&mut out, 0);
    fmt.put_u16(&mut out, fmt.ehdr_size() as u16);
    fmt.put_u16(&mut out, phsz as u16);
    fmt.put_u16(&mut out, nph as u16);
    fmt.put_u16(&mut out, fmt.shdr_size() as u16);
    fmt.put_u16(&mut out, 0);
    fmt.put_u16(&mut out, 0);
    for p in &phdrs {
        p.encode(fmt, &mut out);
    }
    out.extend_from_slice(interp);
    out.extend_from_slice(dynstr);
    out.resize(dyn_off as usize, 0);
    for e in &entries {
        e.encode(fmt, &mut out);
    }
    out.resize((dyn_off + dyn_len) as usize, 0);
    out
}

pub const ALL_FORMATS: [Fmt; 4] = [
    Fmt { is64: true, big: false },
    Fmt { is64: false, big: false },
    Fmt { is64: true, big: true },
    Fmt { is64: false, big: true },
];
