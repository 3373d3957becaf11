//! The `patchelf-rs` binary: a drop-in replacement for patchelf 0.19; all of it is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let prog = std::path::Path::new(&argv0)
        .file_name()
        .map_or_else(|| "patchelf-rs".into(), |n| n.to_string_lossy());
    let code = patchelf_rs::cli::run(
        &prog,
        args.collect(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::ExitCode::from(code)
}
