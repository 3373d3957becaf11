//! Tests of the whole layout on synthetic images of every class and byte order.

use super::*;
use crate::options::{Options, RpathOp};
use crate::testelf::{ALL_FORMATS, image};
use crate::{Elf, rewrite_bytes};

fn prints(data: &[u8]) -> String {
    let opts =
        Options { print_interpreter: true, print_rpath: true, print_needed: true, ..Options::default() };
    let mut out = Vec::new();
    rewrite_bytes(data, &opts, &mut out).expect("print");
    String::from_utf8(out).unwrap()
}

/// Invariants every rewrite must keep: congruent LOADs in address order, PT_DYNAMIC in a writable LOAD,
/// PT_PHDR and PT_INTERP inside a LOAD.
fn check_layout(data: &[u8]) {
    let elf = Elf::parse(data).expect("rewritten file parses");
    let loads: Vec<&Phdr> = elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
    for w in loads.windows(2) {
        assert!(w[0].mem_end() <= w[1].p_vaddr, "LOADs overlap or are out of order: {w:?}");
    }
    for l in &loads {
        assert_eq!(l.p_offset % l.p_align, l.p_vaddr % l.p_align, "LOAD not congruent: {l:?}");
        assert!(l.file_end() <= data.len() as u64);
    }
    let inside = |p: &Phdr, writable: bool| {
        loads.iter().any(|l| {
            l.p_vaddr <= p.p_vaddr
                && p.mem_end() <= l.mem_end()
                && p.p_offset - l.p_offset == p.p_vaddr - l.p_vaddr
                && (!writable || l.p_flags & PF_W != 0)
        })
    };
    for p in &elf.phdrs {
        match p.p_type {
            PT_DYNAMIC => assert!(inside(p, true), "PT_DYNAMIC not in a writable LOAD"),
            PT_PHDR | PT_INTERP => assert!(inside(p, false), "{p:?} not in a LOAD"),
            _ => {}
        }
    }
}

#[test]
fn prints_through_segments_in_every_class_and_byte_order() {
    for fmt in ALL_FORMATS {
        let data = image(fmt, 2);
        assert_eq!(prints(&data), "/lib/ld-test.so.1\n/old/rpath\nlibc.so.6\n", "{fmt:?}");
    }
}

/// The test image as a shared object (`ET_DYN`) instead of an executable.
fn as_library(mut data: Vec<u8>, fmt: Fmt) -> Vec<u8> {
    data[16..18].copy_from_slice(&fmt.u16_bytes(ET_DYN));
    data
}

#[test]
fn many_edits_are_laid_out_once_in_every_format() {
    for fmt in ALL_FORMATS {
        for spare in [0, 3] {
            for library in [false, true] {
                let data = if library { as_library(image(fmt, spare), fmt) } else { image(fmt, spare) };
                let what = format!("{fmt:?} spare {spare} library {library}");
                let mut opts = Options {
                    set_interpreter: Some(b"/a/much/longer/path/to/the/interpreter/ld-test.so.1".to_vec()),
                    rpath: Some(RpathOp::Set(b"/some/long/path/to/lib:/another/long/path/to/lib64".to_vec())),
                    clobber_old_sections: true,
                    ..Options::default()
                };
                opts.add_needed.insert(b"libextra.so.2".to_vec());
                opts.add_needed.insert(b"libtest.so".to_vec());
                let rw = rewrite_bytes(&data, &opts, &mut std::io::sink()).unwrap().expect("changed");
                let out = rw.apply(&data);
                check_layout(&out);
                assert_eq!(
                    prints(&out),
                    "/a/much/longer/path/to/the/interpreter/ld-test.so.1\n\
                     /some/long/path/to/lib:/another/long/path/to/lib64\nlibextra.so.2\nlibtest.so\nlibc.so.6\n",
                    "{what}"
                );
                let elf = Elf::parse(&out).unwrap();
                let loads = elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD).count();
                // A library gets one new LOAD; an executable one page below its headers, whose LOAD splits in two.
                assert_eq!(loads, 3, "{what}");
                let growth = out.len() - data.len();
                if library {
                    assert!(growth < 1024, "grew by {growth} ({what}) {:#x?}", elf.phdrs);
                } else {
                    assert_eq!(growth, 0x1000, "{what} {:#x?}", elf.phdrs);
                    let first = elf.phdrs.iter().find(|p| p.p_type == PT_LOAD).unwrap();
                    assert_eq!(
                        first.p_vaddr,
                        0x10000 - 0x1000,
                        "the headers' LOAD moved down a page ({what})"
                    );
                }
                // DT_RPATH became DT_RUNPATH, as patchelf does without --force-rpath.
                assert!(elf.dynamic.unwrap().entries.iter().any(|d| d.tag == DT_RUNPATH));
                // The old run path is no longer in the file.
                assert!(!out.windows(10).any(|w| w == b"/old/rpath"));
            }
        }
    }
}

#[test]
fn edits_that_fit_stay_in_place() {
    for fmt in ALL_FORMATS {
        let data = image(fmt, 2);
        let mut opts = Options { rpath: Some(RpathOp::Set(b"/new".to_vec())), ..Options::default() };
        opts.add_needed.insert(b"libtest.so".to_vec());
        opts.set_interpreter = Some(b"/lib/ld.so".to_vec());
        let rw = rewrite_bytes(&data, &opts, &mut std::io::sink()).unwrap().expect("changed");
        assert!(rw.inserts.is_empty(), "nothing should need a new segment ({fmt:?})");
        let out = rw.apply(&data);
        assert_eq!(out.len(), data.len());
        check_layout(&out);
        assert_eq!(prints(&out), "/lib/ld.so\n/new\nlibtest.so\nlibc.so.6\n");
    }
}

#[test]
fn no_op_edits_leave_the_file_identical() {
    let data = image(Fmt { is64: true, big: false }, 1);
    let opts = Options {
        set_interpreter: Some(b"/lib/ld-test.so.1".to_vec()),
        set_os_abi: Some("System V".into()),
        clear_execstack: true,
        ..Options::default()
    };
    assert_eq!(rewrite_bytes(&data, &opts, &mut std::io::sink()).unwrap(), None);
    let empty = Options { set_interpreter: Some(Vec::new()), ..Options::default() };
    assert_eq!(rewrite_bytes(&data, &empty, &mut std::io::sink()).unwrap(), None);
}

#[test]
fn adding_gnu_stack_and_a_segment_grows_the_header_table() {
    for fmt in ALL_FORMATS {
        let mut data = image(fmt, 0);
        // Turn PT_GNU_STACK into PT_NULL so --set-execstack must add a header.
        let at = (fmt.ehdr_size() + 5 * fmt.phdr_size()) as usize;
        data[at..at + 4].copy_from_slice(&[0; 4]);
        // (Without --print-execstack: next to it, patchelf and we ignore --set-execstack.)
        let opts = Options {
            set_execstack: true,
            rpath: Some(RpathOp::Set(b"/a/rather/long/run/path/that/cannot/fit/in/place".to_vec())),
            ..Options::default()
        };
        let rw = rewrite_bytes(&data, &opts, &mut std::io::sink()).unwrap().expect("changed");
        let out = rw.apply(&data);
        check_layout(&out);
        let elf = Elf::parse(&out).unwrap();
        let stack = elf.phdrs.iter().find(|p| p.p_type == PT_GNU_STACK).expect("PT_GNU_STACK added");
        assert_eq!(stack.p_flags & PF_X, PF_X);
    }
}
