//! Which loader and which library path to use: nix-ld's variables first (per system, then generic), then the config
//! file of the root the shim is installed under, then the compiled-in defaults. In an `AT_SECURE` (setuid) process
//! the environment is not consulted at all and a config file counts only if root owns it and nobody else may write.
//!
//! Everything here runs on every program start, so it reads the environment in one pass, reads the config file only
//! when the environment leaves something open, and never zero-fills its buffers.

use core::ffi::CStr;

use ld_shim::buf::{Builder, Str, Strings, TooLong};
use ld_shim::config;
use ld_shim::elf::{PT_INTERP, PT_PHDR};
use ld_shim::system::{self, NATIVE};

use crate::log::{Level, Logger};
use crate::stack::{AT_BASE, AT_EXECFN, AT_PHDR, AT_PHNUM, Stack};
use crate::sys;

/// The longest path the shim builds (PATH_MAX without the NUL).
const PATH_MAX: usize = 4095;
/// The longest config file text read, and the longest library path assembled from the config or the default.
const CONFIG_MAX: usize = 4095;
const LIST_MAX: usize = 8191;

/// The loader used when neither the environment nor a config file names one.
pub const DEFAULT_LOADER: &str = match option_env!("LD_SHIM_DEFAULT_LOADER") {
    Some(path) => path,
    None => "/run/current-system/sw/share/nix-ld/lib/ld.so",
};

/// The library directories used when neither the environment nor a config file names any; skipped when missing.
pub const DEFAULT_LIBRARY_PATH: &str = match option_env!("LD_SHIM_DEFAULT_LIBRARY_PATH") {
    Some(path) => path,
    None => "/run/current-system/sw/share/nix-ld/lib",
};

const LD_LIBRARY_PATH: &[u8] = b"LD_LIBRARY_PATH=";

/// The environment entries the shim cares about, found in one pass: `(envp index, value)`.
#[derive(Default)]
pub struct Vars {
    pub loader_system: Option<(usize, &'static [u8])>,
    pub loader: Option<(usize, &'static [u8])>,
    pub library_path_system: Option<(usize, &'static [u8])>,
    pub library_path: Option<(usize, &'static [u8])>,
    pub log: Option<(usize, &'static [u8])>,
    /// The last `LD_LIBRARY_PATH` (the one ld.so honours).
    pub ld_library_path: Option<usize>,
    /// The first `NIX_LD*` entry of any name.
    pub any_nix_ld: Option<usize>,
}

impl Vars {
    /// Scans the environment; only `NIX_LD*` values are measured, other entries are rejected by their first bytes.
    pub fn scan(stack: &Stack) -> Self {
        let mut vars = Self::default();
        for index in 0..stack.envc {
            let entry = stack.env_ptr(index);
            if stack.env_starts_with(index, LD_LIBRARY_PATH) {
                vars.ld_library_path = Some(index);
                continue;
            }
            if !stack.env_starts_with(index, b"NIX_LD") {
                continue;
            }
            vars.any_nix_ld.get_or_insert(index);
            // SAFETY: environment strings are NUL-terminated and live for the process.
            let text = unsafe { crate::stack::c_bytes(entry) };
            let Some(eq) = text.iter().position(|&b| b == b'=') else { continue };
            let (name, value) = (&text[..eq], &text[eq + 1..]);
            let slot = if name == NATIVE.loader_var.as_bytes() {
                &mut vars.loader_system
            } else if name == system::LOADER_VAR.as_bytes() {
                &mut vars.loader
            } else if name == NATIVE.library_path_var.as_bytes() {
                &mut vars.library_path_system
            } else if name == system::LIBRARY_PATH_VAR.as_bytes() {
                &mut vars.library_path
            } else if name == system::LOG_VAR.as_bytes() {
                &mut vars.log
            } else {
                continue;
            };
            // Like getenv, the first entry of a name wins.
            slot.get_or_insert((index, value));
        }
        vars
    }
}

/// Where the library path comes from.
#[derive(Clone, Copy)]
pub enum LibraryPath {
    /// Nothing to add.
    None,
    /// An environment variable's value, used as it is; `slot` is its envp index.
    Env { slot: usize, value: &'static [u8] },
    /// Directories from the config file or the default (those that exist).
    Built(&'static [u8]),
}

/// The resolved settings.
pub struct Settings {
    /// The loader: an environment value in place (it is NUL-terminated there) or a string built in the block.
    loader: &'static CStr,
    pub loader_source: &'static [u8],
    pub library_path: LibraryPath,
    pub library_path_source: &'static [u8],
    /// The config file looked at (empty when the environment settled everything).
    pub config_path: &'static [u8],
}

impl Settings {
    /// The loader path.
    pub fn loader(&self) -> &CStr {
        self.loader
    }

    /// The library path to add (empty for none).
    pub fn library_path_bytes(&self) -> &[u8] {
        match self.library_path {
            LibraryPath::None => b"",
            LibraryPath::Env { value, .. } | LibraryPath::Built(value) => value,
        }
    }
}

/// The config file, read lazily: only when the environment leaves something open.
#[derive(Default)]
struct ConfigFile {
    text: &'static [u8],
    /// The root the shim is installed under (see [`system::root_of`]), which prefixes every path in the file.
    root: &'static [u8],
    path: &'static [u8],
    loaded: bool,
}

impl ConfigFile {
    fn ensure_loaded(&mut self, strings: &mut Strings<'static>, stack: &Stack, secure: bool, log: &Logger) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        self.read(strings, stack, secure, log);
        if let (Some(number), Some(mut line)) = (self.config().bad_line, log.line(Level::Warn)) {
            line.push(b"ignoring line ").push_dec(number).push(b" of ").push(self.path).write_to(2);
        }
    }

    fn config(&self) -> config::Config<'static> {
        config::parse(self.text)
    }

    fn read(&mut self, strings: &mut Strings<'static>, stack: &Stack, secure: bool, log: &Logger) {
        let shim = shim_path(stack, strings);
        self.root = system::root_of(shim, &NATIVE);
        let Ok(path) = strings.concat(&[self.root, NATIVE.config.as_bytes()]) else { return };
        self.path = path.bytes();
        let Ok(c_path) = path.c_str() else { return };
        let fd = match sys::open(c_path) {
            Ok(fd) => fd,
            Err(errno) => {
                if let Some(mut line) = log.line(if errno.0 == 2 { Level::Debug } else { Level::Warn }) {
                    line.push(b"cannot read ").push(self.path).push(b": ").push(errno.text().as_bytes());
                    line.write_to(2);
                }
                return;
            }
        };
        if !matches!(sys::fstat(fd), Ok(stat) if stat.is_file()) {
            if let Some(mut line) = log.line(Level::Warn) {
                line.push(b"ignoring ").push(self.path).push(b": not a regular file").write_to(2);
            }
            sys::close(fd);
            return;
        }
        if secure {
            // A setuid program must not take its loader from a file its caller could have written.
            let trusted = matches!(sys::fstat(fd), Ok(stat) if stat.uid == 0 && stat.mode & 0o022 == 0);
            if !trusted {
                if let Some(mut line) = log.line(Level::Warn) {
                    line.push(b"ignoring ")
                        .push(self.path)
                        .push(b" in a setuid process: not owned by root or writable by others")
                        .write_to(2);
                }
                sys::close(fd);
                return;
            }
        }
        match strings.build(CONFIG_MAX, |text| text.fill_with(|room| read_text(fd, room))) {
            Ok(text) => self.text = text.bytes(),
            Err(errno) => {
                if let Some(mut line) = log.line(Level::Warn) {
                    line.push(b"cannot read ").push(self.path).push(b": ").push(errno.text().as_bytes());
                    line.write_to(2);
                }
            }
        }
        sys::close(fd);
    }
}

/// Reads a config file into `room`; returns the length read. A short read that ends a line is the end of the file
/// (the kernel fills a read from a regular file unless the file ends), which saves the read that would return 0.
fn read_text(fd: usize, room: &mut [core::mem::MaybeUninit<u8>]) -> Result<usize, sys::Errno> {
    let mut done = 0;
    while done < room.len() {
        let asked = room.len() - done;
        let got = sys::read(fd, &mut room[done..])?;
        done += got.len();
        if got.is_empty() || (got.len() < asked && got.last() == Some(&b'\n')) {
            break;
        }
    }
    Ok(done)
}

/// Resolves the loader and the library path, building what it must in `strings`.
pub fn resolve(
    strings: &mut Strings<'static>,
    stack: &Stack,
    vars: &Vars,
    secure: bool,
    log: &Logger,
) -> Settings {
    let mut file = ConfigFile::default();
    let mut loader: Option<(&'static CStr, &'static [u8])> = None;
    // nix-ld semantics: an empty variable counts as unset, and a trailing newline (from pasting the contents of a
    // `nix-support/dynamic-linker` file) is dropped.
    let env_loaders = [(vars.loader_system, NATIVE.loader_var), (vars.loader, system::LOADER_VAR)];
    for (var, name) in env_loaders {
        let Some((_, value)) = var.filter(|_| !secure) else { continue };
        if value.is_empty() || value == b"\n" {
            continue;
        }
        let path = match value.strip_suffix(b"\n") {
            None => {
                // SAFETY: `value` is the tail of a NUL-terminated environment string.
                let with_nul = unsafe { core::slice::from_raw_parts(value.as_ptr(), value.len() + 1) };
                CStr::from_bytes_with_nul(with_nul).ok()
            }
            Some(trimmed) => strings.concat(&[trimmed]).and_then(Str::c_str).ok(),
        };
        let path = path.unwrap_or_else(|| crate::log::fail_load(value, b"file name too long"));
        loader = Some((path, name.as_bytes()));
        break;
    }
    if loader.is_none() {
        file.ensure_loaded(strings, stack, secure, log);
        if let Some(value) = file.config().loader {
            let path = strings.concat(&[file.root, value]).and_then(Str::c_str);
            let path = path.unwrap_or_else(|_| crate::log::fail_load(value, b"file name too long"));
            loader = Some((path, b"config"));
        }
    }
    let (loader, loader_source) = loader.unwrap_or_else(|| {
        let path = strings.concat(&[DEFAULT_LOADER.as_bytes()]).and_then(Str::c_str);
        let path =
            path.unwrap_or_else(|_| crate::log::fail_load(DEFAULT_LOADER.as_bytes(), b"file name too long"));
        (path, b"default")
    });

    let env_paths =
        [(vars.library_path_system, NATIVE.library_path_var), (vars.library_path, system::LIBRARY_PATH_VAR)];
    let (library_path, library_path_source): (LibraryPath, &'static [u8]) = if secure {
        // glibc ignores LD_LIBRARY_PATH in secure mode, so passing one would only change the environment.
        (LibraryPath::None, b"none (setuid process)")
    } else if let Some(((slot, value), name)) =
        env_paths.into_iter().find_map(|(var, name)| Some((var?, name)))
    {
        (LibraryPath::Env { slot, value }, name.as_bytes())
    } else {
        file.ensure_loaded(strings, stack, secure, log);
        let (root, list, source): (&[u8], &[u8], &'static [u8]) = match file.config().library_path {
            Some(value) => (file.root, value, b"config"),
            None => (b"", DEFAULT_LIBRARY_PATH.as_bytes(), b"default"),
        };
        let built = strings.build(LIST_MAX, |out| {
            append_existing_dirs(out, root, list, log);
            Ok::<(), TooLong>(())
        });
        match built {
            Ok(built) if !built.bytes().is_empty() => (LibraryPath::Built(built.bytes()), source),
            _ => (LibraryPath::None, source),
        }
    };
    Settings { loader, loader_source, library_path, library_path_source, config_path: file.path }
}

/// Appends the `:`-separated directories of `list`, each prefixed with `root`, that exist.
fn append_existing_dirs(out: &mut Builder<'_>, root: &[u8], list: &[u8], log: &Logger) {
    for dir in list.split(|&b| b == b':').filter(|dir| !dir.is_empty()) {
        let mark = out.len();
        let start = if out.is_empty() { 0 } else { mark + 1 };
        let separator: &[u8] = if out.is_empty() { b"" } else { b":" };
        if out.push(separator).and_then(|()| out.push(root)).and_then(|()| out.push(dir)).is_err() {
            out.truncate(mark);
            if let Some(mut line) = log.line(Level::Warn) {
                line.push(b"library path too long; dropping ").push(root).push(dir).write_to(2);
            }
            continue;
        }
        let exists = match out.c_str_from(start) {
            Ok(c_path) => matches!(sys::stat(c_path), Ok(stat) if stat.is_dir()),
            Err(_) => false,
        };
        if !exists {
            if let Some(mut line) = log.line(Level::Debug) {
                line.push(b"skipping missing library directory ").push(root).push(dir).write_to(2);
            }
            out.truncate(mark);
        }
    }
}

/// The path the shim was started from: the program's `PT_INTERP` when it runs as an interpreter; run directly, the
/// path it was executed by (`AT_EXECFN`) when that is absolute, else `/proc/self/exe`. The path as named, not the
/// resolved one, decides the root, as it does for `PT_INTERP`: `/lib64/ld-linux-x86-64.so.2` means the real root
/// even where `/lib64` is a symlink elsewhere. Empty when unknown (the config is then looked up in the real root).
fn shim_path(stack: &Stack, strings: &mut Strings<'static>) -> &'static [u8] {
    if stack.aux(AT_BASE).unwrap_or(0) != 0 {
        return program_interpreter(stack).unwrap_or(b"");
    }
    if let Some(execfn) = stack.aux(AT_EXECFN).filter(|&addr| addr != 0) {
        // SAFETY: the kernel puts the NUL-terminated file name on the initial stack and points AT_EXECFN at it.
        let name = unsafe { crate::stack::c_bytes(execfn as *const u8) };
        if name.first() == Some(&b'/') {
            return name;
        }
    }
    let link = strings.build(PATH_MAX, |out| {
        out.fill_with(|room| sys::readlink(c"/proc/self/exe", room).map(<[u8]>::len).map_err(|_| TooLong))
    });
    link.map_or(&b""[..], Str::bytes)
}

/// The program's `PT_INTERP` string, found through `AT_PHDR`; the load bias comes from `PT_PHDR`.
fn program_interpreter(stack: &Stack) -> Option<&'static [u8]> {
    let phdr = stack.aux(AT_PHDR)?;
    let count = stack.aux(AT_PHNUM)?;
    #[cfg(target_pointer_width = "64")]
    let (size, vaddr_at) = (56, 16);
    #[cfg(target_pointer_width = "32")]
    let (size, vaddr_at) = (32, 8);
    let read = |index: usize, at: usize| -> usize {
        // SAFETY: AT_PHDR points at AT_PHNUM mapped program headers of the native class.
        unsafe { core::ptr::read_unaligned((phdr + index * size + at) as *const usize) }
    };
    let kind = |index: usize| read(index, 0) as u32;
    let phdr_index = (0..count).find(|&index| kind(index) == PT_PHDR)?;
    let bias = phdr.wrapping_sub(read(phdr_index, vaddr_at));
    let interp_index = (0..count).find(|&index| kind(index) == PT_INTERP)?;
    let addr = bias.wrapping_add(read(interp_index, vaddr_at));
    // SAFETY: the kernel mapped PT_INTERP's string (it read it from there to start us).
    Some(unsafe { crate::stack::c_bytes(addr as *const u8) })
}
