//! `fhskit run [--strategy auto|patch|shim|fhs] BINARY [ARGS…]`: the main job. Analyse the program (`analysis`),
//! realise the packages that provide what it needs (`realise` over `pkgs::closure`), then run it as the strategy
//! says (`strategy`). A second run of the same file reads the cached plan and starts at once.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use pkgs::closure::Closure;
use store::{Store, StoreConfig};

use crate::analysis::{self, Analysis};
use crate::dlopen;
use crate::realise::{self, Hints, SourceOptions};
use crate::strategy::{self, Strategy};

/// Where libraries may come from (shared by run, patch, generate, steam-run).
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Never take packages from the host's dpkg database (only from the repositories).
    #[arg(long)]
    pub no_host: bool,
    /// Never use apt repositories (only the host's dpkg database).
    #[arg(long)]
    pub offline: bool,
    /// A repository in apt's one-line form, e.g. "[signed-by=KEY.gpg arch=amd64,i386] http://127.0.0.1:8080/debian
    /// bookworm main" (repeatable; default: the configured ones, else the host's apt sources).
    #[arg(long = "repo", value_name = "SPEC")]
    pub repos: Vec<String>,
    /// Configuration file (default: $XDG_CONFIG_HOME/fhskit/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Root directory whose var/lib/dpkg and etc/apt describe the host (default: /).
    #[arg(long, value_name = "DIR", env = "FHSKIT_HOST_ROOT")]
    pub host_root: Option<PathBuf>,
    /// A library the program loads with dlopen, to provide too (repeatable; also FHSKIT_DLOPEN=a.so:b.so).
    #[arg(long = "dlopen", value_name = "SONAME")]
    pub dlopen: Vec<String>,
    /// The store directory (default: FHSKIT_STORE, else the per-user store).
    #[arg(long, value_name = "DIR")]
    pub store: Option<String>,
}

impl SourceArgs {
    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            host: !self.no_host,
            host_root: self.host_root.clone().unwrap_or_else(|| PathBuf::from("/")),
            repo: !self.offline,
            repos: self.repos.clone(),
            config: self.config.clone(),
            jobs: 4,
        }
    }

    pub fn store_config(&self) -> Result<StoreConfig> {
        Ok(StoreConfig::from_arg(self.store.as_deref())?)
    }

    /// What distinguishes prepared results: a different source setting must not reuse a cached plan.
    pub fn salt(&self) -> String {
        format!(
            "{}|{}|{:?}|{:?}|{:?}",
            self.no_host,
            self.offline,
            self.repos,
            self.dlopen,
            std::env::var(dlopen::ENV).ok()
        )
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// How to run it: auto picks one that works here and says which.
    #[arg(long, value_enum, default_value = "auto")]
    pub strategy: Strategy,
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Prepare everything again even if a cached plan exists.
    #[arg(long)]
    pub refresh: bool,
    /// The program (an ELF executable or a launcher script that starts one), then its arguments. Everything after
    /// the program is passed on unparsed, so `fhskit run ./tool --version` asks the tool, not fhskit.
    #[arg(
        value_name = "BINARY [ARGS]",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

impl RunArgs {
    fn binary(&self) -> PathBuf {
        PathBuf::from(&self.command[0])
    }

    fn args(&self) -> &[OsString] {
        &self.command[1..]
    }
}

/// Analyses `binary` and realises its closure; fails naming every need nothing provides, with why and a hint,
/// before anything runs. Optional libraries left out are reported in one line each.
pub fn analyse_and_realise(
    store: &Store,
    binary: &std::path::Path,
    sources: &SourceArgs,
    ignore: &[String],
    hints: Hints,
    verbose: u8,
) -> Result<(Analysis, Closure)> {
    let analysis = analysis::analyse(binary, &dlopen::required(&sources.dlopen))?;
    let needs = analysis::needs(&analysis, ignore);
    let closure = realise::resolve(store, &needs, &sources.source_options())?;
    realise::check(&format!("cannot run {}", binary.display()), &closure, hints)?;
    realise::report_left_out(&closure, verbose);
    Ok((analysis, closure))
}

/// A program prepared before, for `fhskit run [OPTIONS] PROGRAM [ARGS…]` parsed with the `run` command's own
/// arguments only (building the whole command line's parser costs more than the rest of a cached start). `None`
/// when the arguments are anything else (global options, `--refresh`, a parse error, `--help`) or no usable plan
/// exists: the caller then parses and runs as usual.
pub fn cached_plan(argv: &[OsString]) -> Option<(RunArgs, strategy::Plan)> {
    use clap::{Args as _, FromArgMatches as _};
    if argv.get(1).is_none_or(|a| a != "run") {
        return None;
    }
    let command = RunArgs::augment_args(clap::Command::new("run").no_binary_name(true));
    let matches = command.try_get_matches_from(&argv[2..]).ok()?;
    let args = RunArgs::from_arg_matches(&matches).ok()?;
    // This parser knows neither the global options (`-v`, `--option`) nor `--version`, and takes what it does not
    // know as the program (it allows hyphen values there): such a command line is the full parser's to read.
    if args.refresh || args.binary().as_os_str().as_encoded_bytes().starts_with(b"-") {
        return None;
    }
    let config = args.sources.store_config().ok()?;
    let salt = format!("{}|{}", args.strategy.name(), args.sources.salt());
    let key = strategy::cache_key(&args.binary(), &salt).ok()?;
    let plan = strategy::cached(&config, &key)?;
    Some((args, plan))
}

/// Starts a program from its cached plan (what [`run`] does when it finds one).
pub fn start_cached(args: &RunArgs, plan: &strategy::Plan, verbose: u8) -> Result<ExitCode> {
    announce(args.strategy, plan, verbose);
    strategy::execute(plan, args.args())
}

pub fn run(args: RunArgs, verbose: u8) -> Result<ExitCode> {
    let binary = args.binary();
    let config = args.sources.store_config()?;
    let key = strategy::cache_key(&binary, &format!("{}|{}", args.strategy.name(), args.sources.salt()))?;
    if !args.refresh
        && let Some(plan) = strategy::cached(&config, &key)
    {
        return start_cached(&args, &plan, verbose);
    }
    let store = Store::open(config)?;
    let hints = Hints { ignore_missing: false };
    let (analysis, closure) = analyse_and_realise(&store, &binary, &args.sources, &[], hints, verbose)?;
    let (chosen, reason) = match args.strategy {
        Strategy::Auto => strategy::choose(&analysis),
        s => (s, "chosen with --strategy".to_owned()),
    };
    let (plan, refs) = strategy::prepare(&store, chosen, reason, &analysis, &closure)?;
    strategy::remember(&store, &key, &plan, &refs)?;
    drop(store);
    if matches!(plan.strategy, Strategy::Shim | Strategy::Fhs) && !fhsenv::userns::single_threaded() {
        // Namespaces need a single-threaded process; the plan is stored, so the new process starts at once.
        return Err(strategy::reexec_prepared());
    }
    announce(args.strategy, &plan, verbose);
    strategy::execute(&plan, args.args())
}

fn announce(requested: Strategy, plan: &strategy::Plan, verbose: u8) {
    if verbose > 0 {
        plan.describe();
    } else if requested == Strategy::Auto {
        eprintln!(
            "fhskit: running {} with the {} strategy ({})",
            plan.program.display(),
            plan.strategy.name(),
            plan.reason
        );
    }
}
