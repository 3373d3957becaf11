//! Link flags for the `ld-shim` binary only (tests and the library link normally): a static-pie without libc, start
//! files or an interpreter of its own, laid out compactly so the stripped file stays small.

/// Set by `../build.rs` when the linker is `ld.lld` itself (rust-lld, for a cross target without a cross C
/// compiler) rather than a C compiler driver: the same flags, without the driver's spelling.
const LINKER_FLAVOR: &str = "LD_SHIM_LINKER_FLAVOR";

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    println!("cargo:rerun-if-env-changed={LINKER_FLAVOR}");
    if os != "linux" {
        return;
    }
    // `-static-pie` is the driver's `-static -pie --no-dynamic-linker -z text` without start files or libc.
    let lld = std::env::var(LINKER_FLAVOR).is_ok_and(|flavor| flavor == "ld");
    let entry: &[&str] = if lld {
        &["-static", "-pie", "--no-dynamic-linker", "-ztext"]
    } else {
        &["-nostartfiles", "-nostdlib", "-static-pie", "-Wl,--no-dynamic-linker"]
    };
    // Nothing protects RELRO after our own relocation pass, so its page padding would only cost file size.
    let layout = ["-z,norelro", "-z,noseparate-code", "--build-id=none", "--gc-sections", "-z,noexecstack"];
    for arg in entry {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    for arg in layout {
        if lld {
            for part in arg.split(',') {
                println!("cargo:rustc-link-arg-bins={part}");
            }
        } else {
            println!("cargo:rustc-link-arg-bins=-Wl,{arg}");
        }
    }
    // Compiled-in fallbacks (nix-ld's NixOS locations unless the builder chooses others).
    for var in ["LD_SHIM_DEFAULT_LOADER", "LD_SHIM_DEFAULT_LIBRARY_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
