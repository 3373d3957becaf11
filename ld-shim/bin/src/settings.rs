//! Which loader and which library path to use: nix-ld's variables first (per system, then generic), then the config
//! file of the root the shim is installed under, then the compiled-in defaults. In an `AT_SECURE` (setuid) process
//! the environment is not consulted at all and a config file counts only if root owns it and nobody else may write.

use core::ffi::CStr;

use ld_shim::buf::Buf;
use ld_shim::config;
use ld_shim::elf::{PT_INTERP, PT_PHDR};
use ld_shim::system::{self, NATIVE};

use crate::log::{Level, Logger};
use crate::stack::{AT_PHDR, AT_PHNUM, Stack};
use crate::sys;

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

/// Where the library path comes from.
pub enum LibraryPath {
    /// Nothing to add.
    None,
    /// An environment variable's value, used as it is; `slot` is its envp index.
    Env { slot: usize, value: &'static [u8] },
    /// Directories from the config file or the default, those that exist.
    Built(ListBuf),
}

impl LibraryPath {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::None => b"",
            Self::Env { value, .. } => value,
            Self::Built(list) => list.as_bytes(),
        }
    }
}

/// The resolved settings.
pub struct Settings {
    pub loader: PathBuf,
    pub loader_source: &'static [u8],
    pub library_path: LibraryPath,
    pub library_path_source: &'static [u8],
    pub config_path: PathBuf,
}

/// The config file, read lazily: only when the environment leaves something open.
struct ConfigFile {
    text: [u8; 4096],
    len: usize,
    root: PathBuf,
    path: PathBuf,
    loaded: bool,
}

impl ConfigFile {
    fn ensure_loaded(&mut self, stack: &Stack, secure: bool, log: &Logger) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        self.read(stack, secure, log);
        if let (Some(number), Some(mut line)) = (self.config().bad_line, log.line(Level::Warn)) {
            line.push(b"ignoring line ").push_dec(number).push(b" of ").push(self.path.as_bytes()).write_to(2);
        }
    }

    fn config(&self) -> config::Config<'_> {
        config::parse(&self.text[..self.len])
    }

    fn read(&mut self, stack: &Stack, secure: bool, log: &Logger) {
        let mut shim = PathBuf::new();
        shim_path(stack, &mut shim);
        let root = system::root_of(shim.as_bytes(), &NATIVE);
        if self.root.push(root).is_err() || self.path.push(root).and_then(|()| self.path.push(NATIVE.config.as_bytes())).is_err() {
            return;
        }
        let Ok(path) = self.path.as_c_str() else { return };
        let fd = match sys::open(path) {
            Ok(fd) => fd,
            Err(errno) => {
                if let Some(mut line) = log.line(if errno.0 == 2 { Level::Debug } else { Level::Warn }) {
                    line.push(b"cannot read ").push(self.path.as_bytes()).push(b": ").push(errno.text().as_bytes()).write_to(2);
                }
                return;
            }
        };
        if secure {
            // A setuid program must not take its loader from a file its caller could have written.
            let trusted = matches!(sys::fstat(fd), Ok(stat) if stat.uid == 0 && stat.mode & 0o022 == 0);
            if !trusted {
                if let Some(mut line) = log.line(Level::Warn) {
                    line.push(b"ignoring ").push(self.path.as_bytes()).push(b" in a setuid process: not owned by root or writable by others").write_to(2);
                }
                sys::close(fd);
                return;
            }
        }
        match sys::read_full(fd, &mut self.text) {
            Ok(len) => self.len = len,
            Err(errno) => {
                if let Some(mut line) = log.line(Level::Warn) {
                    line.push(b"cannot read ").push(self.path.as_bytes()).push(b": ").push(errno.text().as_bytes()).write_to(2);
                }
            }
        }
        sys::close(fd);
    }
}

/// Resolves the loader and the library path.
pub fn resolve(stack: &Stack, secure: bool, log: &Logger) -> Settings {
    let env = |name: &str| if secure { None } else { stack.getenv(name.as_bytes()) };
    let mut file = ConfigFile { text: [0; 4096], len: 0, root: PathBuf::new(), path: PathBuf::new(), loaded: false };
    let mut loader = PathBuf::new();
    let mut loader_source: &'static [u8] = b"";
    // nix-ld semantics: an empty variable counts as unset, and a trailing newline (from pasting the contents of a
    // `nix-support/dynamic-linker` file) is dropped.
    for name in [NATIVE.loader_var, system::LOADER_VAR] {
        if let Some((_, value)) = env(name) {
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            if !value.is_empty() {
                if loader.push(value).is_err() {
                    crate::log::fail_load(value, b"path too long");
                }
                loader_source = name.as_bytes();
                break;
            }
        }
    }
    if loader.is_empty() {
        file.ensure_loaded(stack, secure, log);
        if let Some(value) = file.config().loader {
            let mut joined = PathBuf::new();
            if joined.push(file.root.as_bytes()).and_then(|()| joined.push(value)).is_err() {
                crate::log::fail_load(value, b"path too long");
            }
            loader = joined;
            loader_source = b"config";
        }
    }
    if loader.is_empty() {
        let _ = loader.push(DEFAULT_LOADER.as_bytes());
        loader_source = b"default";
    }

    let mut library_path = LibraryPath::None;
    let library_path_source: &'static [u8];
    if secure {
        // glibc ignores LD_LIBRARY_PATH in secure mode, so passing one would only change the environment.
        library_path_source = b"none (setuid process)";
    } else if let Some((slot, value, name)) = [NATIVE.library_path_var, system::LIBRARY_PATH_VAR]
        .into_iter()
        .find_map(|name| env(name).map(|(slot, value)| (slot, value, name)))
    {
        library_path = LibraryPath::Env { slot, value };
        library_path_source = name.as_bytes();
    } else {
        file.ensure_loaded(stack, secure, log);
        let mut list = ListBuf::new();
        if let Some(value) = file.config().library_path {
            let root = file.root.as_bytes();
            append_existing_dirs(&mut list, root, value, log);
            library_path_source = b"config";
        } else {
            append_existing_dirs(&mut list, b"", DEFAULT_LIBRARY_PATH.as_bytes(), log);
            library_path_source = b"default";
        }
        if !list.is_empty() {
            library_path = LibraryPath::Built(list);
        }
    }
    let mut config_path = PathBuf::new();
    let _ = config_path.push(file.path.as_bytes());
    Settings { loader, loader_source, library_path, library_path_source, config_path }
}

/// Appends the `:`-separated directories of `list`, each prefixed with `root`, that exist.
fn append_existing_dirs(out: &mut ListBuf, root: &[u8], list: &[u8], log: &Logger) {
    for dir in list.split(|&b| b == b':').filter(|dir| !dir.is_empty()) {
        let mut path = PathBuf::new();
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
        let saved = out.len();
        let separator: &[u8] = if out.is_empty() { b"" } else { b":" };
        if out.push(separator).and_then(|()| out.push(path.as_bytes())).is_err() {
            // Keep what fits rather than a cut directory name.
            let kept = out.as_bytes().len().min(saved);
            let mut copy = ListBuf::new();
            let _ = copy.push(&out.as_bytes()[..kept]);
            *out = copy;
            if let Some(mut line) = log.line(Level::Warn) {
                line.push(b"library path too long; dropping ").push(path.as_bytes()).write_to(2);
            }
        }
    }
}

/// The path the shim was started from: the program's `PT_INTERP` when it runs as an interpreter, else
/// `/proc/self/exe`. Left empty when unknown (the config is then looked up in the real root).
fn shim_path(stack: &Stack, out: &mut PathBuf) {
    if stack.aux(crate::stack::AT_BASE).unwrap_or(0) == 0 {
        let mut link = [0u8; 4096];
        if let Ok(len) = sys::readlink(c"/proc/self/exe", &mut link) {
            let _ = out.push(&link[..len.min(link.len())]);
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

/// The loader path as a C string (it never contains a NUL: it came from a C string or a NUL-free config line).
pub fn loader_c_str(settings: &Settings) -> &CStr {
    match settings.loader.as_c_str() {
        Ok(path) => path,
        Err(_) => crate::log::fail(b"loader path contains a NUL byte"),
    }
}
