//! The `fhskit` binary: argument parsing, logging and error reporting; each command lives in `commands/`.
//!
//! This is the only crate that prints, exits, draws progress or uses `anyhow`. It glues the libraries together:
//! `patchelf-rs` for ELF surgery, and later `store`, `pkgs`, `fhsenv`, `eval` and `ld-shim`.

mod analysis;
mod commands;
mod dlopen;
mod eval_store;
mod hint;
mod launcher;
mod nixpkgs;
mod output;
mod realise;
mod strategy;
mod substitute;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The evaluator allocates and frees small blocks (thunks, environments) at a high rate; mimalloc's per-thread free
// lists make that a large part faster than glibc's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own C interface (the static library `mimalloc` links in).
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}
/// `mi_option_arena_eager_commit` in the bundled mimalloc 2's `mimalloc.h` (the fifth entry of `mi_option_e`).
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
/// `mi_option_purge_delay` there (the sixteenth entry): milliseconds before freed memory is returned, -1 for never.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Stops returning freed memory to the system, for a process whose allocations are few and short-lived (the
/// launcher of `env run`): each return is an madvise(2) over mimalloc's arenas, about a dozen of them per launch
/// (before the fork and at exit), more than a fast start can afford.
pub(crate) fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores the value, which mimalloc reads at its next purge.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Turns off mimalloc's eager commit of its arenas before anything is allocated: with it, every page of an arena
/// region ever handed out stays resident, and the builder (a thread per job, a fork per build) peaked at twice its
/// live memory (38 MB against 20 MB for a chain of 50 builds; nix-build needs 26 MB). Memory is then committed as
/// it is used and purged when freed, as on other systems. It runs from `.init_array`, before the Rust runtime's
/// first allocation reserves the first arena (called from `main`, it came too late and changed nothing).
extern "C" fn lean_allocator() {
    // SAFETY: mi_option_set only stores the value; the process has a single thread this early.
    unsafe { mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
}

#[used]
#[unsafe(link_section = ".init_array")]
static LEAN_ALLOCATOR: extern "C" fn() = lean_allocator;

/// Make prebuilt Linux binaries run where they were not built to run.
#[derive(Debug, Parser)]
#[command(name = "fhskit", version, about, propagate_version = true)]
struct Cli {
    /// More logging: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Set a Nix setting for this command (`--option substituters ''`, `--option sandbox false`, `--option
    /// keep-outputs true`, …); wins over the configuration files.
    #[arg(long = "option", num_args = 2, value_names = ["NAME", "VALUE"], global = true, action = clap::ArgAction::Append)]
    option: Vec<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a downloaded binary: find the libraries it needs, realise them into the store, run it (patched, through
    /// the loader shim, or in an FHS env).
    Run(commands::run::RunArgs),
    /// Rewrite binaries to run without FHS paths (autoPatchelf): the result goes into the store (or --in-place/--out).
    Patch(commands::patch::PatchArgs),
    /// Write an env declaration (env.toml or buildFHSEnv-style Nix) with the packages a binary needs.
    Generate(commands::generate::GenerateArgs),
    /// Run a command in an FHS env with a broad default library set for games and desktop programs.
    SteamRun(commands::steam_run::SteamRunArgs),
    /// Evaluate a Nix expression and print the result as `nix-instantiate --eval` does.
    #[command(args_override_self = true)]
    Eval(commands::eval::NixArgs),
    /// Evaluate a Nix expression, write the `.drv` files of its derivations and print their paths
    /// (`nix-instantiate`, with all its options; `--eval` is `fhskit eval`).
    #[command(args_override_self = true)]
    Instantiate(commands::eval::NixArgs),
    /// Build derivations as nix-build does: evaluate, realise in the sandbox, print the outputs, make ./result links.
    Build(commands::build::BuildArgs),
    /// A shell in the build environment of a derivation, of `-p` packages, or inside a buildFHSEnv env
    /// (nix-shell): inputs realised, stdenv's setup sourced, `--run`/`--command`, `--pure`.
    #[command(args_override_self = true)]
    Shell(commands::shell::ShellArgs),
    /// Show the build log of a derivation or of an output.
    Log(commands::build::LogArgs),
    /// ELF surgery with patchelf's options (the same engine as the `patchelf-rs` binary).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Patchelf {
        /// Arguments exactly as patchelf takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Debian packages from signed apt repositories: update, search, show, resolve, fetch, locate.
    Pkgs {
        #[command(subcommand)]
        command: commands::pkgs::PkgsCommand,
        #[command(flatten)]
        common: commands::pkgs::Common,
    },
    /// Which packages provide a soname or file (from the repositories' Contents index).
    Locate {
        #[command(flatten)]
        args: commands::pkgs::LocateArgs,
        #[command(flatten)]
        common: commands::pkgs::Common,
    },
    /// The loader shim (nix-ld's job): install at the FHS loader paths, show, uninstall.
    Shim {
        #[command(subcommand)]
        command: commands::shim::ShimCommand,
    },
    /// The Nix-compatible store: add, hash, dump, export/import, queries, garbage collection, verify, optimise.
    Store {
        #[command(subcommand)]
        command: commands::store::StoreCommand,
        #[command(flatten)]
        args: commands::store::StoreArgs,
    },
    /// Profiles and generations: install, remove, list, rollback, switch, delete.
    Profile {
        #[command(subcommand)]
        command: commands::profile::ProfileCommand,
        #[command(flatten)]
        args: commands::profile::ProfileArgs,
    },
    /// Serve the store as a Nix binary cache over HTTP (nix-serve's job).
    Serve(commands::cache::ServeArgs),
    /// Declared FHS environments: build, enter, run in, diagnose.
    Env {
        #[command(subcommand)]
        command: commands::env::EnvCommand,
    },
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    // A cached `fhskit run` starts its program without building the parser of every command.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some((args, plan)) = commands::run::cached_plan(&argv) {
        init_logging(0);
        return finish(commands::run::start_cached(&args, &plan, 0));
    }
    if let Some((launch, command)) = commands::env::quick_run_args(&argv) {
        init_logging(0);
        return finish(commands::env::launch_env(&launch, command, 0));
    }
    let cli = Cli::parse_from(argv);
    init_logging(cli.verbose);
    // The first line of a verbose log says which build wrote it.
    tracing::debug!(version = env!("CARGO_PKG_VERSION"), "fhskit starting");
    if let Err(err) = substitute::set_options(&cli.option) {
        report(&err);
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args, cli.verbose),
        Command::Patch(args) => commands::patch::run(args),
        Command::Generate(args) => commands::generate::run(args, cli.verbose),
        Command::SteamRun(args) => commands::steam_run::run(args, cli.verbose),
        Command::Eval(args) => commands::eval::run_eval(args),
        Command::Instantiate(args) => commands::eval::run_instantiate(args),
        Command::Build(args) => commands::build::run_build(args),
        Command::Shell(args) => commands::shell::run(args, cli.verbose),
        Command::Log(args) => commands::build::run_log(args),
        Command::Patchelf { args } => commands::patchelf::run(args),
        Command::Pkgs { command, common } => commands::pkgs::run(command, common),
        Command::Locate { args, common } => commands::pkgs::locate(args, common),
        Command::Env { command } => commands::env::run(command, cli.verbose),
        Command::Shim { command } => commands::shim::run(command),
        Command::Store { command, args } => commands::store::run(command, args),
        Command::Profile { command, args } => commands::profile::run(command, args),
        Command::Serve(args) => commands::cache::serve(args),
    };
    finish(result)
}

/// The exit code of a command's result, reporting a failure.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        // The reader went away (`fhskit … | head -1`): it has what it wanted, so end quietly, as ripgrep does.
        Err(err) if is_closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Whether an error comes from writing to a pipe whose reader has gone.
fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `print!`/`println!` panic when stdout is a pipe its reader closed (Rust ignores SIGPIPE); that panic is turned
/// into a quiet, successful exit, the same outcome as a write error of the commands that write through a
/// `Write` handle. Every other panic is reported as before.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's wording for a failed print! to stdout (library/std/src/io/stdio.rs).
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(output::colour_on_stderr())
        .without_time()
        // Its report of a failed write is an `eprintln!`, which panics when stderr has gone (`… 2>&1 | head`).
        .log_internal_errors(false)
        .init();
}

/// Prints `error: …` with the cause chain and the hints it carries, as every command reports failure.
fn report(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    for h in hint::hints(err) {
        eprintln!("hint: {h}");
    }
}
