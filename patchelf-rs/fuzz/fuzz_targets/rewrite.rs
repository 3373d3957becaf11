//! Fuzz target: the first input byte picks a set of edits applied to the rest; planning the rewrite and applying
//! it must never panic, and a rewrite must produce a file the parser accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchelf_rs::{Elf, Options, RpathOp, rewrite_bytes};

fuzz_target!(|input: &[u8]| {
    let Some((&sel, data)) = input.split_first() else { return };
    let mut opts = Options { clobber_old_sections: sel & 0x80 != 0, ..Options::default() };
    if sel & 1 != 0 {
        opts.set_interpreter = Some(b"/a/much/longer/interpreter/path/ld-linux-x86-64.so.2".to_vec());
    }
    if sel & 2 != 0 {
        opts.rpath = Some(RpathOp::Set(b"/some/long/path/to/lib:/another/long/path".to_vec()));
    }
    if sel & 4 != 0 {
        opts.add_needed.insert(b"libfuzz.so.1".to_vec());
    }
    if sel & 8 != 0 {
        opts.set_soname = Some(b"libsoname-fuzz.so".to_vec());
    }
    if sel & 16 != 0 {
        opts.set_execstack = true;
    }
    if sel & 32 != 0 {
        opts.add_debug_tag = true;
        opts.no_default_lib = true;
    }
    if sel & 64 != 0 {
        opts.rename_dynamic_symbols.insert(b"main".to_vec(), b"renamed_main".to_vec());
        opts.clear_symbol_version.insert(b"printf".to_vec());
    }
    if let Ok(Some(rw)) = rewrite_bytes(data, &opts, &mut std::io::sink()) {
        let out = rw.apply(data);
        assert!(Elf::parse(&out).is_ok(), "a rewrite produced a file that does not parse");
    }
});
