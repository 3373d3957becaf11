//! The `fhskit` binary: argument parsing, logging and error reporting; each command lives in `commands/`.
//!
//! This is the only crate that prints, exits, draws progress or uses `anyhow`. It glues the libraries together:
//! `patchelf-rs` for ELF surgery, and later `store`, `pkgs`, `fhsenv`, `eval` and `ld-shim`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Make prebuilt Linux binaries run where they were not built to run.
#[derive(Debug, Parser)]
#[command(name = "fhskit", version, about, propagate_version = true)]
struct Cli {
    /// More logging: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// ELF surgery with patchelf's options (the same engine as the `patchelf-rs` binary).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Patchelf {
        /// Arguments exactly as patchelf takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Patchelf { args } => commands::patchelf::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().init();
}

/// Prints `error: …` with the cause chain, as every command reports failure.
fn report(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
