//! Builds the `ld-shim` executable (the separate package in `bin/`, see its Cargo.toml for why it is separate) in
//! release mode for the native target and, on x86-64 when the Rust target is installed, for i686. The paths reach
//! this crate as `LD_SHIM_BIN` / `LD_SHIM_BIN_I686` (integration tests run the files) and the bytes are embedded by
//! `embedded.rs` for `fhskit shim install`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set for the nested build, whose copy of this library must not build the shim again.
const NESTED: &str = "LD_SHIM_NESTED_BUILD";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ld_shim_native)");
    println!("cargo::rustc-check-cfg=cfg(ld_shim_i686)");
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
    match build(&manifest_dir, &target_dir, &target) {
        Ok(path) => {
            println!("cargo::rustc-env=LD_SHIM_BIN={}", path.display());
            println!("cargo::rustc-cfg=ld_shim_native");
        }
        Err(message) => panic!("building the ld-shim executable for {target} failed:\n{message}"),
    }
    if target == "x86_64-unknown-linux-gnu" {
        let i686 = "i686-unknown-linux-gnu";
        if !target_installed(i686) {
            println!(
                "cargo::warning=the {i686} Rust target is not installed; building ld-shim without the 32-bit shim"
            );
            return;
        }
        match build(&manifest_dir, &target_dir, i686) {
            Ok(path) => {
                println!("cargo::rustc-env=LD_SHIM_BIN_I686={}", path.display());
                println!("cargo::rustc-cfg=ld_shim_i686");
            }
            Err(message) => {
                let first = message.lines().find(|line| line.contains("error")).unwrap_or("unknown error");
                println!("cargo::warning=building the 32-bit ld-shim failed, continuing without it: {first}");
            }
        }
    }
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
fn build(manifest_dir: &Path, target_dir: &Path, target: &str) -> Result<PathBuf, String> {
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
