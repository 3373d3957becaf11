//! The systems the shim is built for: Nix system names, nix-ld's per-system variables, the FHS loader path the shim
//! is installed at, and the config file path inside the install root.

/// One supported system. The shim binary is built for exactly one of them ([`NATIVE`]); `fhskit shim install`
/// handles all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct System {
    /// The Nix system name, e.g. `x86_64-linux`.
    pub nix: &'static str,
    /// nix-ld's per-system loader variable, which takes precedence over `NIX_LD`.
    pub loader_var: &'static str,
    /// nix-ld's per-system library path variable, which takes precedence over `NIX_LD_LIBRARY_PATH`.
    pub library_path_var: &'static str,
    /// The FHS path programs name as `PT_INTERP`, where `fhskit shim install` puts the shim.
    pub interpreter: &'static str,
    /// The config file, relative to the root the shim is installed in.
    pub config: &'static str,
    /// `EI_CLASS` of the programs and loaders of this system (1 = 32-bit, 2 = 64-bit).
    pub class: u8,
    /// `e_machine` of the programs and loaders of this system.
    pub machine: u16,
    /// The Rust target the shim is built for.
    pub rust_target: &'static str,
}

/// 64-bit x86.
pub const X86_64: System = System {
    nix: "x86_64-linux",
    loader_var: "NIX_LD_x86_64_linux",
    library_path_var: "NIX_LD_LIBRARY_PATH_x86_64_linux",
    interpreter: "/lib64/ld-linux-x86-64.so.2",
    config: "/etc/fhskit/ld-shim-x86_64-linux.conf",
    class: 2,
    machine: 62,
    rust_target: "x86_64-unknown-linux-gnu",
};

/// 32-bit x86.
pub const I686: System = System {
    nix: "i686-linux",
    loader_var: "NIX_LD_i686_linux",
    library_path_var: "NIX_LD_LIBRARY_PATH_i686_linux",
    interpreter: "/lib/ld-linux.so.2",
    config: "/etc/fhskit/ld-shim-i686-linux.conf",
    class: 1,
    machine: 3,
    rust_target: "i686-unknown-linux-gnu",
};

/// 64-bit Arm.
pub const AARCH64: System = System {
    nix: "aarch64-linux",
    loader_var: "NIX_LD_aarch64_linux",
    library_path_var: "NIX_LD_LIBRARY_PATH_aarch64_linux",
    interpreter: "/lib/ld-linux-aarch64.so.1",
    config: "/etc/fhskit/ld-shim-aarch64-linux.conf",
    class: 2,
    machine: 183,
    rust_target: "aarch64-unknown-linux-gnu",
};

/// Every supported system.
pub const ALL: [System; 3] = [X86_64, I686, AARCH64];

/// The system this crate is compiled for.
#[cfg(target_arch = "x86_64")]
pub const NATIVE: System = X86_64;
/// The system this crate is compiled for.
#[cfg(target_arch = "x86")]
pub const NATIVE: System = I686;
/// The system this crate is compiled for.
#[cfg(target_arch = "aarch64")]
pub const NATIVE: System = AARCH64;
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
compile_error!("ld-shim supports x86_64, x86 (i686) and aarch64");

/// nix-ld's generic loader variable.
pub const LOADER_VAR: &str = "NIX_LD";
/// nix-ld's generic library path variable.
pub const LIBRARY_PATH_VAR: &str = "NIX_LD_LIBRARY_PATH";
/// The log level variable (`error`, `warn`, `info`, `debug`, `trace`).
pub const LOG_VAR: &str = "NIX_LD_LOG";

/// Returns the root the shim at `shim_path` is installed under: the prefix before the system's interpreter path
/// (`/tmp/r` for `/tmp/r/lib64/ld-linux-x86-64.so.2`), or the empty prefix (the real root) when the shim lives
/// anywhere else. Config paths, and the paths inside the config, are taken relative to this root, so a tree built
/// with `fhskit shim install --root DIR` works both from outside (through `DIR/lib64/…`) and as a container's `/`.
///
/// A `/usr` right before the interpreter path belongs to the loader path, not to the root: with a merged `/usr`
/// (`lib64 -> usr/lib64`) the shim's real path, which is what the kernel reports when the shim is run directly and
/// what a program names when it was linked against the resolved path, is `<root>/usr/lib64/…`.
pub fn root_of<'a>(shim_path: &'a [u8], system: &System) -> &'a [u8] {
    match shim_path.strip_suffix(system.interpreter.as_bytes()) {
        Some(prefix) => prefix.strip_suffix(b"/usr").unwrap_or(prefix),
        None => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_prefix_before_the_interpreter_path() {
        assert_eq!(root_of(b"/tmp/r/lib64/ld-linux-x86-64.so.2", &X86_64), b"/tmp/r");
        assert_eq!(root_of(b"/lib64/ld-linux-x86-64.so.2", &X86_64), b"");
        assert_eq!(root_of(b"/work/target/debug/ld-shim", &X86_64), b"");
        assert_eq!(root_of(b"/r/lib/ld-linux.so.2", &I686), b"/r");
        assert_eq!(root_of(b"/r/lib/ld-linux.so.2", &X86_64), b"");
        // Merged /usr: the real path of the loader path.
        assert_eq!(root_of(b"/usr/lib64/ld-linux-x86-64.so.2", &X86_64), b"");
        assert_eq!(root_of(b"/tmp/r/usr/lib64/ld-linux-x86-64.so.2", &X86_64), b"/tmp/r");
        assert_eq!(root_of(b"/usr/lib/ld-linux.so.2", &I686), b"");
        assert_eq!(root_of(b"/tmp/usrx/lib/ld-linux.so.2", &I686), b"/tmp/usrx");
    }

    #[test]
    fn variable_names_follow_nix_ld() {
        for system in ALL {
            let suffix = system.nix.replace('-', "_");
            assert_eq!(system.loader_var, std::format!("NIX_LD_{suffix}"));
            assert_eq!(system.library_path_var, std::format!("NIX_LD_LIBRARY_PATH_{suffix}"));
            assert!(system.config.ends_with(&std::format!("ld-shim-{}.conf", system.nix)));
        }
    }
}
