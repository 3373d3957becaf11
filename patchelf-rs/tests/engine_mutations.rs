//! Engine robustness: thousands of deterministic corruptions of real binaries (bit flips and overwritten words in
//! the headers, the program header table and the dynamic tables, plus truncations) go through parsing, every print
//! operation and a multi-edit rewrite. Each must end in a value or a typed error, never a panic, and every rewrite
//! that succeeds must parse again. This is the stable-toolchain companion of the `cargo fuzz` targets.

use patchelf_rs::{Elf, Options, RpathOp, rewrite_bytes};
use test_support::rng::Rng;

fn print_all() -> Options {
    Options {
        print_interpreter: true,
        print_os_abi: true,
        print_soname: true,
        print_rpath: true,
        print_execstack: true,
        print_needed: true,
        ..Options::default()
    }
}

fn many_edits() -> Options {
    let mut o = Options {
        set_interpreter: Some(b"/a/much/longer/interpreter/path/than/before/ld-linux-x86-64.so.2".to_vec()),
        rpath: Some(RpathOp::Set(b"/some/long/path/to/lib:/another/long/path/to/lib64".to_vec())),
        add_debug_tag: true,
        set_execstack: true,
        clobber_old_sections: true,
        ..Options::default()
    };
    o.add_needed.insert(b"libm.so.6".to_vec());
    o.replace_needed.insert(b"libc.so.6".to_vec(), b"libc.so.7".to_vec());
    o.clear_symbol_version.insert(b"free".to_vec());
    o
}

/// Offsets worth corrupting: the ELF header, the program header table and the dynamic segment.
fn hot_ranges(data: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = vec![(0, 64)];
    if let Ok(elf) = Elf::parse(data) {
        let ph = elf.ehdr.e_phoff as usize;
        ranges.push((ph, ph + elf.phdrs.len() * elf.fmt.phdr_size() as usize));
        if let Some(d) = &elf.dynamic {
            ranges.push((d.offset as usize, (d.offset + d.size) as usize));
        }
        if let Ok((off, size)) = elf.dynstr_range() {
            ranges.push((off as usize, (off + size.min(256)) as usize));
        }
    }
    ranges.retain(|(a, b)| a < b && *b <= data.len());
    ranges
}

fn check(data: &[u8]) {
    let _ = rewrite_bytes(data, &print_all(), &mut std::io::sink());
    if let Ok(Some(rw)) = rewrite_bytes(data, &many_edits(), &mut std::io::sink()) {
        let out = rw.apply(data);
        assert!(Elf::parse(&out).is_ok(), "a rewrite of a corrupted input does not parse");
    }
}

#[test]
fn corrupted_real_binaries_never_panic() {
    let inputs: Vec<Vec<u8>> =
        ["/bin/true", "/bin/ls"].iter().filter_map(|p| std::fs::read(p).ok()).collect();
    assert!(!inputs.is_empty(), "no system binaries to corrupt");
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for original in &inputs {
        // The intact file edits cleanly.
        let rw = rewrite_bytes(original, &many_edits(), &mut std::io::sink())
            .expect("intact binary")
            .expect("changed");
        assert!(Elf::parse(&rw.apply(original)).is_ok());
        let ranges = hot_ranges(original);
        for round in 0..1500 {
            let mut data = original.clone();
            let (a, b) = ranges[rng.index(ranges.len())];
            for _ in 0..1 + rng.index(4) {
                let at = a + rng.index(b - a);
                match rng.index(3) {
                    0 => data[at] ^= 1 << rng.index(8),
                    1 => data[at] = 0xff,
                    _ => {
                        let end = (at + 8).min(data.len());
                        for (k, byte) in data[at..end].iter_mut().enumerate() {
                            *byte = (rng.next_u64() >> (k * 8)) as u8;
                        }
                    }
                }
            }
            if round % 50 == 0 {
                data.truncate(rng.index(original.len()));
            }
            check(&data);
        }
    }
}

#[test]
fn truncations_of_the_headers_give_errors() {
    let original = std::fs::read("/bin/true").expect("read /bin/true");
    for len in 0..1024.min(original.len()) {
        let _ = rewrite_bytes(&original[..len], &print_all(), &mut std::io::sink());
        let _ = rewrite_bytes(&original[..len], &many_edits(), &mut std::io::sink());
    }
    assert!(rewrite_bytes(&original[..10], &print_all(), &mut std::io::sink()).is_err());
}
