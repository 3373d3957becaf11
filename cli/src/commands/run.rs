//! `fhskit run [--strategy auto|patch|shim|fhs] BINARY [ARGS…]`: the main job. Analyse the program (`closure`),
//! realise the packages that provide what it needs (`realise`), then run it as the strategy says (`strategy`).
//! A second run of the same file reads the cached plan and starts at once.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use store::{Store, StoreConfig};

use crate::closure::{self, Analysis};
use crate::dlopen;
use crate::realise::{self, Closure, Needs, SourceOptions};
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

/// Analyses `binary` and realises its closure; fails naming every unresolvable soname with the packages that could
/// provide it, before anything runs.
pub fn analyse_and_realise(
    store: &Store,
    binary: &std::path::Path,
    sources: &SourceArgs,
    ignore: &[String],
) -> Result<(Analysis, Closure)> {
    let first = closure::analyse(binary, &[])?;
    let needed: Vec<String> = first.external.iter().map(|(_, s)| s.clone()).collect();
    let (required, optional) = dlopen::extra_sonames(&needed, &sources.dlopen);
    let analysis = if required.is_empty() { first } else { closure::analyse(binary, &required)? };
    let class = analysis.program.class;
    let mut needs = Needs {
        machine: analysis.program.machine,
        sonames: analysis.external.clone(),
        optional: optional.into_iter().map(|s| (class, s)).collect(),
        ignore: ignore.to_vec(),
        ..Default::default()
    };
    if let Some(l) = &analysis.launcher {
        // The launcher's interpreter must exist inside an FHS env, with the tools such scripts use.
        if let Some(interp) = l.interpreter.split_whitespace().next() {
            needs.paths.push(interp.to_owned());
            if interp.ends_with("/env")
                && let Some(prog) = l.interpreter.split_whitespace().nth(1)
            {
                needs.paths.push(format!("/bin/{prog}"));
            }
        }
        needs.paths.push("/bin/ls".into());
    }
    let closure = realise::realise(store, &needs, &sources.source_options())?;
    if !closure.unresolved.is_empty() {
        let mut msg = format!("cannot run {}: no source provides", binary.display());
        for (soname, cands) in &closure.unresolved {
            let by = analysis
                .needed_by
                .get(soname)
                .and_then(|s| s.iter().next())
                .map(|p| format!(" (needed by {})", p.display()))
                .unwrap_or_default();
            if cands.is_empty() {
                msg.push_str(&format!(
                    "\n  {soname}{by}: no package in the configured repositories ships it"
                ));
            } else {
                msg.push_str(&format!("\n  {soname}{by}: could come from {}", cands.join(", ")));
            }
        }
        msg.push_str("\nhint: configure a repository that has these packages (--repo, or `fhskit pkgs update` for the host's apt sources), or pass --dlopen/--ignore-missing for optional ones");
        bail!(msg);
    }
    for s in &closure.optional_missing {
        tracing::info!("optional library {s} (dlopen list) is not available; continuing without it");
    }
    Ok((analysis, closure))
}

pub fn run(args: RunArgs, verbose: u8) -> Result<ExitCode> {
    let binary = args.binary();
    let config = args.sources.store_config()?;
    let key = strategy::cache_key(&binary, &format!("{}|{}", args.strategy.name(), args.sources.salt()))?;
    if !args.refresh
        && let Some(plan) = strategy::cached(&config, &key)
    {
        announce(args.strategy, &plan, verbose);
        return strategy::execute(&plan, args.args());
    }
    let store = Store::open(config)?;
    let (analysis, closure) = analyse_and_realise(&store, &binary, &args.sources, &[])?;
    let (chosen, reason) = match args.strategy {
        Strategy::Auto => strategy::choose(&analysis),
        s => (s, "chosen with --strategy".to_owned()),
    };
    let (plan, refs) = strategy::prepare(&store, chosen, reason, &binary, &analysis, &closure)?;
    strategy::remember(&store, &key, &plan, &refs)?;
    drop(store);
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
