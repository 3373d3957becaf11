//! `fhskit patchelf …`: patchelf's command line over the `patchelf-rs` engine.

use std::ffi::OsString;
use std::process::ExitCode;

pub fn run(_args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("patchelf is not implemented yet")
}
