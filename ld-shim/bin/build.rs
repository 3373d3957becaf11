//! Link flags for the `ld-shim` binary only (tests and the library link normally): a static-pie without libc, start
//! files or an interpreter of its own, laid out compactly so the stripped file stays small.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return;
    }
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static-pie",
        "-Wl,--no-dynamic-linker",
        // Nothing protects RELRO after our own relocation pass, so its page padding would only cost file size.
        "-Wl,-z,norelro",
        "-Wl,-z,noseparate-code",
        "-Wl,--build-id=none",
        "-Wl,--gc-sections",
        "-Wl,-z,noexecstack",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    // Compiled-in fallbacks (nix-ld's NixOS locations unless the builder chooses others).
    for var in ["LD_SHIM_DEFAULT_LOADER", "LD_SHIM_DEFAULT_LIBRARY_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
