//! Direct mode (`ld-shim PROGRAM ARGS…`, the shim run as a program): behaves like `ld.so PROGRAM ARGS…` with the
//! configured paths. It execs the real loader with `--library-path` instead of setting `LD_LIBRARY_PATH`, so the
//! path reaches the loader but never the environment of the program or its children. Without arguments it describes
//! its settings.

use ld_shim::buf::Strings;
use ld_shim::system::{self, NATIVE};

use crate::loader;
use crate::log::Line;
use crate::settings::Settings;
use crate::stack::Stack;
use crate::sys;

const WORD: usize = core::mem::size_of::<usize>();

/// Runs the program through the real loader; never returns.
pub fn run(stack: &Stack, settings: &Settings, strings: &mut Strings<'static>, page: usize) -> ! {
    if stack.argc < 2 {
        describe(settings);
    }
    let loader = settings.loader();
    // Check before exec: a loop (NIX_LD naming the shim) or a wrong file gets the same one-line error as in
    // interpreter mode instead of an exec failure or an endless chain.
    if let Err(failure) = loader::open(loader, page) {
        crate::log::fail_load(loader.to_bytes(), failure.reason().as_bytes());
    }
    let ours = settings.library_path_bytes();
    // ld.so's --library-path replaces LD_LIBRARY_PATH, so keep the user's directories first.
    let merged = if ours.is_empty() {
        c""
    } else {
        let old = stack.getenv(b"LD_LIBRARY_PATH").map_or(&b""[..], |(_, old)| old);
        let separator: &[u8] = if old.is_empty() { b"" } else { b":" };
        let merged = match strings.concat(&[old, separator, ours]) {
            Ok(merged) => merged,
            Err(_) => crate::log::fail(b"library path too long"),
        };
        match merged.c_str() {
            Ok(path) => path,
            Err(_) => crate::log::fail(b"library path contains a NUL byte"),
        }
    };
    let extra = if ours.is_empty() { 0 } else { 2 };
    let count = stack.argc + extra + 1;
    // SAFETY: a fresh anonymous mapping for the new argv; the process is replaced or exits right after.
    let argv = match unsafe {
        sys::mmap(
            0,
            count * WORD,
            sys::PROT_READ | sys::PROT_WRITE,
            sys::MAP_PRIVATE | sys::MAP_ANONYMOUS,
            usize::MAX,
            0,
        )
    } {
        Ok(addr) => addr as *mut *const u8,
        Err(errno) => crate::log::fail_load(loader.to_bytes(), errno.text().as_bytes()),
    };
    // SAFETY: `argv` holds `count` pointers: argv[0], the option and its value, the rest of our arguments, NULL.
    unsafe {
        let mut at = 0;
        *argv.add(at) = *stack.argv;
        at += 1;
        if extra != 0 {
            *argv.add(at) = c"--library-path".as_ptr().cast();
            *argv.add(at + 1) = merged.as_ptr().cast();
            at += 2;
        }
        for index in 1..stack.argc {
            *argv.add(at) = *stack.argv.add(index);
            at += 1;
        }
        *argv.add(at) = core::ptr::null();
        let errno = sys::execve(loader, argv.cast_const(), stack.envp.cast_const());
        crate::log::fail_load(loader.to_bytes(), errno.text().as_bytes())
    }
}

/// Prints what the shim would do, then exits 0.
fn describe(settings: &Settings) -> ! {
    let out = 1;
    Line::new()
        .push(b"a loader shim compatible with nix-ld (")
        .push(NATIVE.nix.as_bytes())
        .push(b")")
        .write_to(out);
    Line::new().push(b"usage: ld-shim PROGRAM [ARGS...]  (runs PROGRAM like ld.so PROGRAM)").write_to(out);
    Line::new()
        .push(b"loader: ")
        .push(settings.loader().to_bytes())
        .push(b" (from ")
        .push(settings.loader_source)
        .push(b")")
        .write_to(out);
    Line::new()
        .push(b"library path: ")
        .push(settings.library_path_bytes())
        .push(b" (from ")
        .push(settings.library_path_source)
        .push(b")")
        .write_to(out);
    let config: &[u8] = if settings.config_path.is_empty() { b"(not read)" } else { settings.config_path };
    Line::new().push(b"config: ").push(config).write_to(out);
    Line::new()
        .push(b"variables: ")
        .push(NATIVE.loader_var.as_bytes())
        .push(b", ")
        .push(system::LOADER_VAR.as_bytes())
        .push(b", ")
        .push(NATIVE.library_path_var.as_bytes())
        .push(b", ")
        .push(system::LIBRARY_PATH_VAR.as_bytes())
        .push(b", ")
        .push(system::LOG_VAR.as_bytes())
        .write_to(out);
    sys::exit(0)
}
