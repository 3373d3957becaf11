//! Builds the `ld-shim` executable (the separate package in `bin/`, see its Cargo.toml for why it is separate) in
//! release mode for the native target and, on x86-64, also for i686 and aarch64 when those Rust targets are
//! installed (aarch64 is linked with the toolchain's own rust-lld, else an aarch64 cross C compiler). The paths reach this crate as `LD_SHIM_BIN`, `LD_SHIM_BIN_I686` and
//! `LD_SHIM_BIN_AARCH64` (integration tests run the files) and `embedded.rs` embeds the bytes for
//! `fhskit shim install`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set for the nested build, whose copy of this library must not build the shim again.
const NESTED: &str = "LD_SHIM_NESTED_BUILD";

fn main() {
    for cfg in ["native", "i686", "aarch64"] {
        println!("cargo::rustc-check-cfg=cfg(ld_shim_{cfg})");
    }
    println!("cargo::rerun-if-env-changed={NESTED}");
    if env::var_os(NESTED).is_some() {
        return;
    }
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for path in ["bin/src", "bin/Cargo.toml", "bin/Cargo.lock", "bin/build.rs", "src"] {
        watch(&manifest_dir.join(path));
    }
    for var in ["LD_SHIM_DEFAULT_LOADER", "LD_SHIM_DEFAULT_LIBRARY_PATH"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let target_dir = out_dir.join("shim");
    match build(&manifest_dir, &target_dir, &target, None) {
        Ok(path) => {
            println!("cargo::rustc-env=LD_SHIM_BIN={}", path.display());
            println!("cargo::rustc-cfg=ld_shim_native");
        }
        Err(message) => panic!("building the ld-shim executable for {target} failed:\n{message}"),
    }
    if target != "x86_64-unknown-linux-gnu" {
        return;
    }
    // Extra shims for `fhskit shim install`: 32-bit x86 (the host's C compiler links it with -m32, as Rust's i686
    // target does) and aarch64 (binfmt/qemu setups), each when its Rust target is installed.
    let extras =
        [("i686-unknown-linux-gnu", "I686", "i686"), ("aarch64-unknown-linux-gnu", "AARCH64", "aarch64")];
    for (extra, var, cfg) in extras {
        if !target_installed(extra) {
            println!(
                "cargo::warning=the {extra} Rust target is not installed; building fhskit without the {cfg} shim"
            );
            continue;
        }
        let linker = if cfg == "aarch64" {
            match cross_linker() {
                Some(linker) => Some(linker),
                None => {
                    println!(
                        "cargo::warning=neither rust-lld nor aarch64-linux-gnu-gcc is available; building fhskit \
                         without the aarch64 shim"
                    );
                    continue;
                }
            }
        } else {
            None
        };
        match build(&manifest_dir, &target_dir, extra, linker) {
            Ok(path) => {
                println!("cargo::rustc-env=LD_SHIM_BIN_{var}={}", path.display());
                println!("cargo::rustc-cfg=ld_shim_{cfg}");
            }
            Err(message) => {
                let first = message.lines().find(|line| line.contains("error")).unwrap_or("unknown error");
                println!("cargo::warning=building the {cfg} ld-shim failed, continuing without it: {first}");
            }
        }
    }
}

/// A linker for a cross target: the rust-lld of this toolchain, else an aarch64 cross C compiler on PATH.
fn cross_linker() -> Option<Linker> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let host = env::var("HOST").expect("cargo sets HOST");
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().ok()?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    if Path::new(&sysroot).join("lib/rustlib").join(host).join("bin/rust-lld").is_file() {
        return Some(Linker::RustLld);
    }
    on_path("aarch64-linux-gnu-gcc").then_some(Linker::Cc("aarch64-linux-gnu-gcc"))
}

/// How a cross target is linked.
#[derive(Clone, Copy)]
enum Linker {
    /// The toolchain's `rust-lld` as `ld.lld` (rustc finds it in its own tools directory).
    RustLld,
    /// A C compiler driver.
    Cc(&'static str),
}

/// Returns true if and only if `program` is an executable on PATH.
fn on_path(program: &str) -> bool {
    env::var_os("PATH").is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Asks cargo to rerun this script when `path` or, for a directory, any file below it changes (listing each file:
/// a directory alone is not watched recursively here).
fn watch(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            watch(&entry.path());
        }
    }
}

/// Runs `cargo build --release` on `bin/` for `target`; returns the executable's path.
fn build(
    manifest_dir: &Path,
    target_dir: &Path,
    target: &str,
    linker: Option<Linker>,
) -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(manifest_dir.join("bin/Cargo.toml"))
        .arg("--target")
        .arg(target)
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's settings (its target dir, flags for the host, clippy's wrapper) must not leak in.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_MAKEFLAGS")
            || key.starts_with("RUSTFLAGS")
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "RUSTDOCFLAGS"
        {
            command.env_remove(key.as_ref());
        }
    }
    command.env(NESTED, "1");
    let target_var = |name: &str| format!("CARGO_TARGET_{}_{name}", target.to_uppercase().replace('-', "_"));
    command.env_remove("LD_SHIM_LINKER_FLAVOR");
    match linker {
        None => {}
        Some(Linker::Cc(cc)) => {
            command.env(target_var("LINKER"), cc);
        }
        Some(Linker::RustLld) => {
            // bin/build.rs spells the link flags for ld.lld when told so.
            command
                .env(target_var("LINKER"), "rust-lld")
                .env(target_var("RUSTFLAGS"), "-Clinker-flavor=ld.lld")
                .env("LD_SHIM_LINKER_FLAVOR", "ld");
        }
    }
    let output = command.output().map_err(|err| format!("cannot run cargo: {err}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(target_dir.join(target).join("release").join("ld-shim"))
}

/// Returns true if and only if rustc has the standard library for `target`.
fn target_installed(target: &str) -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc).args(["--print", "target-libdir", "--target", target]).output();
    match output {
        Ok(output) if output.status.success() => {
            let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            Path::new(&dir).join("..").is_dir()
                && std::fs::read_dir(&dir).map(|mut entries| entries.next().is_some()).unwrap_or(false)
        }
        _ => false,
    }
}
