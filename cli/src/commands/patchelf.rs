//! `fhskit patchelf …`: patchelf's command line over the `patchelf-rs` engine (the same code as the `patchelf-rs`
//! binary, so options, output, messages and exit codes are identical).

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

pub fn run(args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let code = patchelf_rs::cli::run("fhskit patchelf", args, &mut stdout, &mut stderr);
    stdout.flush()?;
    Ok(ExitCode::from(code))
}
