//! The `patchelf-rs` binary: a drop-in replacement for patchelf 0.19; all of it is in the library's `cli` module.
//!
//! `main` is the C entry point: skipping Rust's runtime start-up (stack-guard probing through `/proc/self/maps`,
//! signal handlers) saves a noticeable share of a sub-millisecond `--print-*` call. Like patchelf, the process then
//! keeps the default `SIGPIPE` disposition. `std::env::args_os` still works: std captures the arguments itself.
#![no_main]

use std::ffi::c_int;

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const std::ffi::c_char) -> c_int {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "patchelf-rs".into());
    let code = patchelf_rs::cli::run(
        &argv0.to_string_lossy(),
        args.collect(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    c_int::from(code)
}
