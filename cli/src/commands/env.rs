//! `fhskit env build|enter|run|doctor`: declared FHS environments over the `fhsenv` library.
//!
//! ENV is either an `env.toml` (built on demand into the cache directory, rebuilt when the spec or a package
//! directory changes) or a directory made by `env build`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use fhsenv::launch::{LaunchOptions, Outcome};
use fhsenv::spec::Mode;
use fhsenv::{BuiltEnv, EnvSpec};

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Build the FHS tree of an env.toml (symlink farm, /etc, ld.so.cache); -v lists path conflicts.
    Build {
        /// The env.toml.
        spec: PathBuf,
        /// Where to put the tree (default: the cache directory).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Enter an env interactively (runs the env's `run` command, by default bash).
    Enter(LaunchArgs),
    /// Run a command inside an env: `fhskit env run ENV -- CMD ARGS…` (the env's `run` command without one).
    Run {
        #[command(flatten)]
        launch: LaunchArgs,
        /// The command and its arguments.
        #[arg(last = true)]
        command: Vec<OsString>,
    },
    /// Check what entering an env needs from this machine and print fixes.
    Doctor,
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// An env.toml or a directory made by `env build`.
    env: PathBuf,
    /// How /usr is provided: the env replaces it (nixos) or is overlaid on the host's (overlay).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Appear as uid/gid 0 inside (for installers).
    #[arg(long)]
    fake_root: bool,
    /// Exec the program in place of fhskit: no monitor process (for supervisors).
    #[arg(long)]
    exec: bool,
    /// Seconds between TERM and KILL when the process tree is terminated.
    #[arg(long, default_value_t = 3)]
    kill_grace: u64,
    /// Print the mount plan and the command instead of running.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Nixos,
    Overlay,
}

pub fn run(command: EnvCommand, verbose: u8) -> anyhow::Result<ExitCode> {
    match command {
        EnvCommand::Build { spec, out } => build(&spec, out.as_deref(), verbose),
        EnvCommand::Enter(launch) => launch_env(&launch, Vec::new(), verbose),
        EnvCommand::Run { launch, command } => launch_env(&launch, command, verbose),
        EnvCommand::Doctor => Ok(doctor()),
    }
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return dir.join("fhskit/envs");
    }
    match std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute() && h.is_dir()) {
        Some(home) => home.join(".cache/fhskit/envs"),
        None => std::env::temp_dir().join(format!("fhskit-{}/envs", nix::unistd::getuid())),
    }
}

/// The default build directory of a spec: its name plus a hash of where the env.toml lives.
fn default_out(spec_path: &Path, spec: &EnvSpec) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let absolute = std::path::absolute(spec_path).unwrap_or_else(|_| spec_path.to_path_buf());
    let mut hasher = std::hash::DefaultHasher::new();
    absolute.hash(&mut hasher);
    cache_dir().join(format!("{}-{:016x}", spec.name, hasher.finish()))
}

fn print_report(report: &fhsenv::BuildReport, out: &Path, verbose: u8) {
    eprintln!(
        "built env at {}: {} links, {} ld.so.cache entries, {} conflicts",
        out.display(),
        report.links,
        report.cache_entries,
        report.conflicts.len()
    );
    if verbose > 0 {
        for c in &report.conflicts {
            eprintln!(
                "conflict: {}: kept {}, dropped {}",
                c.path.display(),
                c.kept.display(),
                c.dropped.display()
            );
        }
        for p in &report.ignored {
            eprintln!("ignored: {} (not an FHS directory fhsenv merges)", p.display());
        }
    } else if !report.conflicts.is_empty() {
        eprintln!("hint: run with --verbose to list the conflicts (the first package listed wins)");
    }
}

fn build(spec_path: &Path, out: Option<&Path>, verbose: u8) -> anyhow::Result<ExitCode> {
    let spec = EnvSpec::load(spec_path)?;
    let out = out.map_or_else(|| default_out(spec_path, &spec), Path::to_path_buf);
    let report =
        fhsenv::build(&spec, &out).with_context(|| format!("failed to build env {}", spec_path.display()))?;
    print_report(&report, &out, verbose);
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Opens ENV: a built directory, or an env.toml built (or rebuilt) into the cache.
fn open_env(env: &Path, verbose: u8) -> anyhow::Result<BuiltEnv> {
    if env.is_dir() {
        return Ok(BuiltEnv::open(env)?);
    }
    let spec = EnvSpec::load(env)?;
    let out = default_out(env, &spec);
    if let Ok(built) = BuiltEnv::open(&out) {
        if built.is_current(&spec) {
            return Ok(built);
        }
    }
    let report =
        fhsenv::build(&spec, &out).with_context(|| format!("failed to build env {}", env.display()))?;
    if verbose > 0 {
        print_report(&report, &out, verbose);
    }
    Ok(BuiltEnv::open(&out)?)
}

fn notify(line: &str) {
    eprintln!("{line}");
}

fn launch_env(args: &LaunchArgs, command: Vec<OsString>, verbose: u8) -> anyhow::Result<ExitCode> {
    let env = open_env(&args.env, verbose)?;
    let options = LaunchOptions {
        command,
        mode: args.mode.map(|m| match m {
            ModeArg::Nixos => Mode::Nixos,
            ModeArg::Overlay => Mode::Overlay,
        }),
        fake_root: args.fake_root,
        exec: args.exec,
        kill_grace: Duration::from_secs(args.kill_grace),
        notify: &notify,
    };
    let prepared = fhsenv::launch::prepare(&env, &options)
        .with_context(|| format!("failed to prepare env {}", env.root.display()))?;
    if args.dry_run {
        let mut out = std::io::stdout().lock();
        for op in &prepared.plan.ops {
            writeln!(out, "{op}")?;
        }
        writeln!(out, "chdir {}", prepared.plan.cwd.display())?;
        let argv: Vec<_> = prepared.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        writeln!(out, "exec {}", argv.join(" "))?;
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = fhsenv::launch::run(&prepared, &options)
        .with_context(|| format!("failed to enter env {}", env.root.display()))?;
    match outcome {
        Outcome::Exited(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
        Outcome::Signaled(sig) => Ok(die_by(sig)),
    }
}

/// Dies by the signal that killed the program, so our caller sees the same status; 128+n if it cannot.
fn die_by(sig: nix::sys::signal::Signal) -> ExitCode {
    use nix::sys::signal::{
        SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, raise, sigaction, sigprocmask,
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // The program already dumped core if it was going to; we must not add a second one.
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL runs no code in signal context.
    let _ = unsafe { sigaction(sig, &default) };
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let _ = raise(sig);
    ExitCode::from(128u8.wrapping_add(sig as u8))
}

fn doctor() -> ExitCode {
    let checks = fhsenv::doctor::checks();
    let mut failed = false;
    for check in &checks {
        println!("{} {}: {}", if check.ok { "ok  " } else { "FAIL" }, check.name, check.detail);
        if let Some(fix) = &check.fix {
            println!("     fix: {fix}");
        }
        failed |= !check.ok && check.name != "landlock";
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
