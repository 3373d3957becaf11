//! The `patchelf-rs` binary: a drop-in replacement for patchelf 0.19 (the engine is in the library).

fn main() -> std::process::ExitCode {
    eprintln!("patchelf-rs: not implemented yet");
    std::process::ExitCode::FAILURE
}
