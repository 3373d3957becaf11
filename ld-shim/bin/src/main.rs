//! The `ld-shim` binary: a static-pie, libc-free program the kernel runs as a program's interpreter. It maps the
//! real ld.so chosen by nix-ld's variables, its config file or a default, passes the library path as
//! `LD_LIBRARY_PATH` and takes it back at the program's entry, then jumps to the real loader on the original stack.
//! Run directly (`ld-shim PROGRAM ARGS…`), it execs the real loader like `ld.so PROGRAM`.
//!
//! Start-up order matters: `arch::_start` (assembly) relocates the binary, then [`shim_main`] runs; no Rust code runs
//! before relocation. The pure logic lives in the `ld_shim` library; see its documentation.
#![no_std]
#![no_main]

mod arch;
mod direct;
mod environ;
mod loader;
mod log;
mod mem;
mod scratch;
mod settings;
mod stack;
mod sys;

use ld_shim::system::NATIVE;

use crate::log::{Level, Logger};
use crate::settings::{LibraryPath, Vars};
use crate::stack::{AT_BASE, AT_PAGESZ, AT_SECURE, Stack};

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = log::Line::new();
    line.push(b"internal error");
    if let Some(location) = info.location() {
        line.push(b" at ").push(location.file().as_bytes()).push(b":").push_dec(location.line() as usize);
    }
    line.write_to(2);
    sys::exit(127)
}

/// Called by `_start` once the binary is relocated, with the kernel's stack pointer (pointing at argc).
///
/// # Safety
/// Only `_start` calls this, with the initial stack and a 256-byte gap below it.
pub unsafe extern "C" fn shim_main(sp: *mut usize) -> ! {
    // SAFETY: `sp` is the kernel's initial stack pointer.
    let stack = unsafe { Stack::parse(sp) };
    let secure = stack.aux(AT_SECURE).unwrap_or(0) != 0;
    let page = stack.aux(AT_PAGESZ).filter(|page| page.is_power_of_two() && *page >= 4096).unwrap_or(4096);
    let vars = Vars::scan(&stack);
    let level = match vars.log {
        Some((_, value)) if !secure => Level::parse(value).unwrap_or(Level::Warn),
        _ => Level::Warn,
    };
    let log = Logger { level };
    // SAFETY: the only call, once per process.
    let mut strings = unsafe { scratch::strings() };
    let settings = settings::resolve(&mut strings, &stack, &vars, secure, &log);
    if let Some(mut line) = log.line(Level::Debug) {
        line.push(b"loader ").push(settings.loader().to_bytes());
        line.push(b" (from ").push(settings.loader_source).push(b")").write_to(2);
    }
    if let Some(mut line) = log.line(Level::Debug) {
        line.push(b"library path ").push(settings.library_path_bytes());
        line.push(b" (from ").push(settings.library_path_source).push(b")").write_to(2);
    }
    if secure && let Some(mut line) = log.line(Level::Info) {
        line.push(b"setuid process: environment ignored").write_to(2);
    }
    if stack.aux(AT_BASE).unwrap_or(0) == 0 {
        direct::run(&stack, &settings, &mut strings, page);
    }

    let loader = settings.loader();
    let mapped = loader::open(loader, page).and_then(|checked| checked.map(page));
    let mapped = match mapped {
        Ok(mapped) => mapped,
        Err(failure) => log::fail_load(loader.to_bytes(), failure.reason().as_bytes()),
    };
    if let Some(mut line) = log.line(Level::Trace) {
        line.push(b"mapped ").push(NATIVE.nix.as_bytes()).push(b" loader at ").push_hex(mapped.bias);
        line.push(b", entry ").push_hex(mapped.entry).write_to(2);
    }

    let ours = settings.library_path_bytes();
    let stack = if ours.is_empty() {
        stack
    } else {
        let borrow = match settings.library_path {
            LibraryPath::Env { slot, .. } => Some(slot),
            _ => vars.any_nix_ld,
        };
        // SAFETY: the stack is untouched so far and `_start` left the gap below it.
        let (stack, edit) =
            unsafe { environ::pass_library_path(stack, &mut strings, ours, vars.ld_library_path, borrow) };
        environ::arm_trampoline(&stack, &edit);
        stack
    };
    if let Some(base) = stack.aux_slot(AT_BASE) {
        // SAFETY: `base` points into the live auxv; the real loader finds itself through AT_BASE.
        unsafe { *base = mapped.bias };
    }
    // SAFETY: the loader is mapped and the stack is a valid initial stack.
    unsafe { arch::jump(mapped.entry, stack.sp) }
}
