//! Fuzz target: parsing and every print operation must return a value or a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchelf_rs::{Options, rewrite_bytes};

fuzz_target!(|data: &[u8]| {
    let opts = Options {
        print_interpreter: true,
        print_os_abi: true,
        print_soname: true,
        print_rpath: true,
        print_execstack: true,
        print_needed: true,
        ..Options::default()
    };
    let _ = rewrite_bytes(data, &opts, &mut std::io::sink());
});
