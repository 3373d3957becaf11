//! Which loader and which library path to use: nix-ld's variables first (per system, then generic), then the config
//! file of the root the shim is installed under, then the compiled-in defaults. In an `AT_SECURE` (setuid) process
//! the environment is not consulted at all and a config file counts only if root owns it and nobody else may write.
//!
//! Everything here runs on every program start, so it reads the environment in one pass, reads the config file only
//! when the environment leaves something open, and never zero-fills its buffers.

use core::ffi::CStr;
use core::mem::MaybeUninit;

use ld_shim::buf::Buf;
use ld_shim::config;
use ld_shim::elf::{PT_INTERP, PT_PHDR};
use ld_shim::system::{self, NATIVE};

use crate::log::{Level, Logger};
use crate::stack::{AT_BASE, AT_EXECFN, AT_PHDR, AT_PHNUM, Stack};
use crate::{scratch, sys};

/// Room for one path (PATH_MAX).
pub type PathBuf = Buf<4096>;
/// Room for a library path assembled from the config file or the default.
pub type ListBuf = Buf<8192>;

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
    /// Directories from the config file or the default (those that exist), in `Settings::library_list`.
    Built,
}

/// The resolved settings. Filled in place (see [`resolve`]) so that its buffers are never copied.
pub struct Settings {
    /// The loader when it is an environment value, used in place (it is NUL-terminated there).
    loader_env: Option<&'static CStr>,
    /// The loader when it was assembled (config, default, or an environment value with a trailing newline).
    loader_built: &'static mut PathBuf,
    pub loader_source: &'static [u8],
    pub library_path: LibraryPath,
    library_list: &'static mut ListBuf,
    pub library_path_source: &'static [u8],
    pub config_path: &'static mut PathBuf,
}

impl Settings {
    /// Empty settings over the static buffers; call once.
    pub fn new() -> Self {
        Self {
            loader_env: None,
            loader_built: scratch::LOADER.take(),
            loader_source: b"",
            library_path: LibraryPath::None,
            library_list: scratch::LIBRARY_LIST.take(),
            library_path_source: b"none",
            config_path: scratch::CONFIG_PATH.take(),
        }
    }

    /// The loader path.
    pub fn loader(&self) -> &CStr {
        match self.loader_env {
            Some(path) => path,
            // The buffer never holds a NUL: it was filled from C strings and NUL-free config lines.
            None => self.loader_built.as_c_str().unwrap_or(c""),
        }
    }

    /// The library path to add (empty for none).
    pub fn library_path_bytes(&self) -> &[u8] {
        match self.library_path {
            LibraryPath::None => b"",
            LibraryPath::Env { value, .. } => value,
            LibraryPath::Built => self.library_list.as_bytes(),
        }
    }
}

/// The config file, read lazily: only when the environment leaves something open.
struct ConfigFile {
    text: Option<&'static mut [MaybeUninit<u8>; 4096]>,
    len: usize,
    root: Option<&'static mut PathBuf>,
    loaded: bool,
}

impl ConfigFile {
    fn ensure_loaded(&mut self, stack: &Stack, secure: bool, log: &Logger, path: &mut PathBuf) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        self.read(stack, secure, log, path);
        if let (Some(number), Some(mut line)) = (self.config().bad_line, log.line(Level::Warn)) {
            line.push(b"ignoring line ").push_dec(number).push(b" of ").push(path.as_bytes()).write_to(2);
        }
    }

    fn config(&self) -> config::Config<'_> {
        let Some(text) = self.text.as_deref() else { return config::Config::default() };
        // SAFETY: `text[..len]` was filled by read().
        let text = unsafe { core::slice::from_raw_parts(text.as_ptr().cast::<u8>(), self.len) };
        config::parse(text)
    }

    fn root(&self) -> &[u8] {
        self.root.as_deref().map_or(b"", |root| root.as_bytes())
    }

    fn read(&mut self, stack: &Stack, secure: bool, log: &Logger, path: &mut PathBuf) {
        let shim = scratch::SHIM_PATH.take();
        shim_path(stack, shim);
        let root = system::root_of(shim.as_bytes(), &NATIVE);
        let root_buf = self.root.insert(scratch::CONFIG_ROOT.take());
        if root_buf.push(root).is_err()
            || path.push(root).and_then(|()| path.push(NATIVE.config.as_bytes())).is_err()
        {
            return;
        }
        let Ok(c_path) = path.as_c_str() else { return };
        let fd = match sys::open(c_path) {
            Ok(fd) => fd,
            Err(errno) => {
                if let Some(mut line) = log.line(if errno.0 == 2 { Level::Debug } else { Level::Warn }) {
                    line.push(b"cannot read ")
                        .push(path.as_bytes())
                        .push(b": ")
                        .push(errno.text().as_bytes());
                    line.write_to(2);
                }
                return;
            }
        };
        if secure {
            // A setuid program must not take its loader from a file its caller could have written.
            let trusted = matches!(sys::fstat(fd), Ok(stat) if stat.uid == 0 && stat.mode & 0o022 == 0);
            if !trusted {
                if let Some(mut line) = log.line(Level::Warn) {
                    line.push(b"ignoring ")
                        .push(path.as_bytes())
                        .push(b" in a setuid process: not owned by root or writable by others")
                        .write_to(2);
                }
                sys::close(fd);
                return;
            }
        }
        match sys::read_full(fd, self.text.insert(scratch::CONFIG_TEXT.take()).as_mut_slice()) {
            Ok(text) => self.len = text.len(),
            Err(errno) => {
                if let Some(mut line) = log.line(Level::Warn) {
                    line.push(b"cannot read ")
                        .push(path.as_bytes())
                        .push(b": ")
                        .push(errno.text().as_bytes());
                    line.write_to(2);
                }
            }
        }
        sys::close(fd);
    }
}

/// Resolves the loader and the library path into `settings`.
pub fn resolve(settings: &mut Settings, stack: &Stack, vars: &Vars, secure: bool, log: &Logger) {
    let mut file = ConfigFile { text: None, len: 0, root: None, loaded: false };
    // nix-ld semantics: an empty variable counts as unset, and a trailing newline (from pasting the contents of a
    // `nix-support/dynamic-linker` file) is dropped.
    let env_loaders = [(vars.loader_system, NATIVE.loader_var), (vars.loader, system::LOADER_VAR)];
    for (var, name) in env_loaders {
        let Some((_, value)) = var.filter(|_| !secure) else { continue };
        if value.is_empty() || value == b"\n" {
            continue;
        }
        match value.strip_suffix(b"\n") {
            None => {
                // SAFETY: `value` is the tail of a NUL-terminated environment string.
                let with_nul = unsafe { core::slice::from_raw_parts(value.as_ptr(), value.len() + 1) };
                settings.loader_env = CStr::from_bytes_with_nul(with_nul).ok();
            }
            Some(trimmed) => {
                if settings.loader_built.push(trimmed).is_err() {
                    crate::log::fail_load(value, b"file name too long");
                }
            }
        }
        settings.loader_source = name.as_bytes();
        break;
    }
    if settings.loader_source.is_empty() {
        file.ensure_loaded(stack, secure, log, settings.config_path);
        if let Some(value) = file.config().loader {
            let built = &mut settings.loader_built;
            if built.push(file.root()).and_then(|()| built.push(value)).is_err() {
                crate::log::fail_load(value, b"file name too long");
            }
            settings.loader_source = b"config";
        }
    }
    if settings.loader_source.is_empty() {
        let _ = settings.loader_built.push(DEFAULT_LOADER.as_bytes());
        settings.loader_source = b"default";
    }

    let env_paths =
        [(vars.library_path_system, NATIVE.library_path_var), (vars.library_path, system::LIBRARY_PATH_VAR)];
    if secure {
        // glibc ignores LD_LIBRARY_PATH in secure mode, so passing one would only change the environment.
        settings.library_path_source = b"none (setuid process)";
    } else if let Some(((slot, value), name)) =
        env_paths.into_iter().find_map(|(var, name)| Some((var?, name)))
    {
        settings.library_path = LibraryPath::Env { slot, value };
        settings.library_path_source = name.as_bytes();
    } else {
        file.ensure_loaded(stack, secure, log, settings.config_path);
        let directory = scratch::DIRECTORY.take();
        if let Some(value) = file.config().library_path {
            append_existing_dirs(settings.library_list, directory, file.root(), value, log);
            settings.library_path_source = b"config";
        } else {
            append_existing_dirs(settings.library_list, directory, b"", DEFAULT_LIBRARY_PATH.as_bytes(), log);
            settings.library_path_source = b"default";
        }
        if !settings.library_list.is_empty() {
            settings.library_path = LibraryPath::Built;
        }
    }
}

/// Appends the `:`-separated directories of `list`, each prefixed with `root`, that exist.
fn append_existing_dirs(out: &mut ListBuf, path: &mut PathBuf, root: &[u8], list: &[u8], log: &Logger) {
    for dir in list.split(|&b| b == b':').filter(|dir| !dir.is_empty()) {
        path.clear();
        if path.push(root).and_then(|()| path.push(dir)).is_err() {
            continue;
        }
        let exists = match path.as_c_str() {
            Ok(c_path) => matches!(sys::stat(c_path), Ok(stat) if stat.is_dir()),
            Err(_) => false,
        };
        if !exists {
            if let Some(mut line) = log.line(Level::Debug) {
                line.push(b"skipping missing library directory ").push(path.as_bytes()).write_to(2);
            }
            continue;
        }
        let separator: &[u8] = if out.is_empty() { b"" } else { b":" };
        if out.len() + separator.len() + path.len() >= 8192 - 1 {
            if let Some(mut line) = log.line(Level::Warn) {
                line.push(b"library path too long; dropping ").push(path.as_bytes()).write_to(2);
            }
            continue;
        }
        let _ = out.push(separator).and_then(|()| out.push(path.as_bytes()));
    }
}

/// The path the shim was started from: the program's `PT_INTERP` when it runs as an interpreter; run directly, the
/// path it was executed by (`AT_EXECFN`) when that is absolute, else `/proc/self/exe`. The path as named, not the
/// resolved one, decides the root, as it does for `PT_INTERP`: `/lib64/ld-linux-x86-64.so.2` means the real root
/// even where `/lib64` is a symlink elsewhere. Left empty when unknown (the config is then looked up in the real
/// root).
fn shim_path(stack: &Stack, out: &mut PathBuf) {
    if stack.aux(AT_BASE).unwrap_or(0) == 0 {
        if let Some(execfn) = stack.aux(AT_EXECFN).filter(|&addr| addr != 0) {
            // SAFETY: the kernel puts the NUL-terminated file name on the initial stack and points AT_EXECFN at it.
            let name = unsafe { crate::stack::c_bytes(execfn as *const u8) };
            if name.first() == Some(&b'/') {
                let _ = out.push(name);
                return;
            }
        }
        if let Ok(target) = sys::readlink(c"/proc/self/exe", scratch::LINK.take()) {
            let _ = out.push(target);
        }
        return;
    }
    if let Some(interp) = program_interpreter(stack) {
        let _ = out.push(interp);
    }
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
