//! `fhskit build` (nix-build), `fhskit store realise` (nix-store -r), `fhskit store query --outputs` and `fhskit
//! log` over the `build` crate: settings from `nix.conf` files and `--option`, the derivations from the evaluator
//! (or `.drv` paths), progress and build logs on stderr as Nix prints them, output paths on stdout, `./result`
//! links as GC roots.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use build::{BuildError, BuildMode, Builder, DerivedPath, Event, FailureKind, Observer, Settings};
use store::{Store, StoreConfig, StorePath};

use crate::commands::eval::{CommonArgs, instantiate_for_build};

/// Options of every command that builds.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BuildOptions {
    /// Rebuild derivations whose outputs are valid and compare the results.
    #[arg(long)]
    pub check: bool,
    /// Keep the build directory (and a `--check` result as `<path>.check`) of failed builds.
    #[arg(short = 'K', long = "keep-failed")]
    pub keep_failed: bool,
    /// Keep building what does not depend on a failed build.
    #[arg(short = 'k', long = "keep-going")]
    pub keep_going: bool,
    /// Show what would be built and fetched, without doing it.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Builds run at once (`max-jobs`; `auto`: one per CPU).
    #[arg(short = 'j', long = "max-jobs", value_name = "N")]
    pub max_jobs: Option<String>,
    /// CPUs each builder may use (`NIX_BUILD_CORES`; 0: all).
    #[arg(long, value_name = "N")]
    pub cores: Option<u64>,
    /// Kill a builder that prints nothing for this many seconds.
    #[arg(long = "max-silent-time", value_name = "S")]
    pub max_silent_time: Option<u64>,
    /// Kill a builder that runs longer than this many seconds.
    #[arg(long, value_name = "S")]
    pub timeout: Option<u64>,
    /// Do not show build logs.
    #[arg(short = 'Q', long = "no-build-output")]
    pub quiet: bool,
}

/// `fhskit build` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub options: BuildOptions,
    /// Name of the result link (`LINK`, `LINK-2`, … and `LINK-<output>` for outputs other than `out`).
    #[arg(short = 'o', long = "out-link", value_name = "LINK", default_value = "result")]
    pub out_link: PathBuf,
    /// Make no result links.
    #[arg(long = "no-out-link")]
    pub no_out_link: bool,
}

/// `fhskit log` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// A derivation, or an output of one.
    pub path: String,
    #[arg(long, env = "FHSKIT_STORE")]
    pub store: Option<String>,
}

/// Settings names Nix knows that the builder does not use; accepted without a warning.
const OTHER_NIX_SETTINGS: &[&str] = &[
    "substituters",
    "trusted-substituters",
    "trusted-public-keys",
    "require-sigs",
    "secret-key-files",
    "experimental-features",
    "trusted-users",
    "allowed-users",
    "auto-optimise-store",
    "connect-timeout",
    "fallback",
    "show-trace",
    "warn-dirty",
    "narinfo-cache-negative-ttl",
    "narinfo-cache-positive-ttl",
    "netrc-file",
    "ssl-cert-file",
    "filter-syscalls",
    "sandbox-dev-shm-size",
    "require-drop-supplementary-groups",
    "pre-build-hook",
    "post-build-hook",
    "diff-hook",
    "run-diff-hook",
    "builders",
    "builders-use-substitutes",
    "max-free",
    "min-free",
    "http-connections",
    "keep-env-derivations",
    "use-sqlite-wal",
    "fsync-metadata",
    "max-substitution-jobs",
];

fn config_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/fhskit/nix.conf")];
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = user {
        files.push(dir.join("fhskit/nix.conf"));
    }
    files
}

fn apply(settings: &mut Settings, name: &str, value: &str, origin: &str) -> Result<()> {
    let known = settings.set(name, value).with_context(|| format!("in {origin}"))?;
    let base = name.strip_prefix("extra-").unwrap_or(name);
    if !known && !OTHER_NIX_SETTINGS.contains(&base) && !cache::settings::is_known(name) {
        eprintln!("warning: unknown setting '{name}'");
    }
    Ok(())
}

fn apply_conf(settings: &mut Settings, text: &str, origin: &Path, depth: usize) -> Result<()> {
    let origin_s = origin.display().to_string();
    for (name, value) in build::settings::parse_conf(text).with_context(|| format!("in {origin_s}"))? {
        if name == "include" || name == "!include" {
            let path = origin.parent().unwrap_or(Path::new("/")).join(&value);
            match std::fs::read_to_string(&path) {
                Ok(t) if depth < 8 => apply_conf(settings, &t, &path, depth + 1)?,
                Ok(_) => bail!("{origin_s}: includes nest too deeply"),
                Err(_) if name == "!include" => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot read {} (included by {origin_s})", path.display()));
                }
            }
            continue;
        }
        apply(settings, &name, &value, &origin_s)?;
    }
    Ok(())
}

/// The builder's settings: Nix's defaults, then `/etc/fhskit/nix.conf`, `$XDG_CONFIG_HOME/fhskit/nix.conf`,
/// `NIX_CONFIG`, then the global `--option NAME VALUE` pairs.
pub fn load_settings() -> Result<Settings> {
    let mut s = Settings::default();
    for f in config_files() {
        if let Ok(text) = std::fs::read_to_string(&f) {
            apply_conf(&mut s, &text, &f, 0)?;
        }
    }
    if let Ok(text) = std::env::var("NIX_CONFIG") {
        apply_conf(&mut s, &text, Path::new("NIX_CONFIG"), 0)?;
    }
    for (name, value) in crate::substitute::options() {
        apply(&mut s, name, value, "--option")?;
    }
    Ok(s)
}

impl BuildOptions {
    fn settings(&self) -> Result<Settings> {
        let mut s = load_settings()?;
        if let Some(j) = &self.max_jobs {
            s.set("max-jobs", j).context("in --max-jobs")?;
        }
        if let Some(c) = self.cores {
            s.cores = c as usize;
        }
        if let Some(t) = self.max_silent_time {
            s.max_silent_time = t;
        }
        if let Some(t) = self.timeout {
            s.timeout = t;
        }
        s.keep_failed |= self.keep_failed;
        s.keep_going |= self.keep_going;
        Ok(s)
    }

    fn mode(&self) -> BuildMode {
        if self.check { BuildMode::Check } else { BuildMode::Normal }
    }
}

/// Prints a realisation's progress on stderr as nix-build does.
struct Printer {
    quiet: bool,
}

/// `eprintln!` that ignores a failed write: a build goes on (and ends) when whoever reads its messages has gone,
/// instead of panicking in the build thread that reports.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `error: ` and the message, continuation lines indented under it.
pub fn print_error(message: &str) {
    say!("error: {}", message.replace('\n', "\n       "));
}

impl Observer for Printer {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::Planned(plan) => {
                let mut text = String::new();
                match plan.build.len() {
                    0 => {}
                    1 => text.push_str("this derivation will be built:\n"),
                    n => text.push_str(&format!("these {n} derivations will be built:\n")),
                }
                for d in &plan.build {
                    text.push_str(&format!("  {d}\n"));
                }
                match plan.substitute.len() {
                    0 => {}
                    1 => text.push_str("this path will be fetched:\n"),
                    n => text.push_str(&format!("these {n} paths will be fetched:\n")),
                }
                for p in &plan.substitute {
                    text.push_str(&format!("  {p}\n"));
                }
                if !text.is_empty() {
                    say!("{}", text.trim_end_matches('\n'));
                }
            }
            Event::Started { drv, check } => {
                if *check {
                    say!("checking outputs of '{drv}'...");
                } else {
                    say!("building '{drv}'...");
                }
            }
            Event::Log { line, .. } => {
                if !self.quiet {
                    say!("{line}");
                }
            }
            Event::Substituted { path } => say!("copying path '{path}' from a substituter..."),
            Event::Failed(f) => print_error(&f.message),
            Event::Note(text) => say!("{text}"),
            Event::Built { .. } => {}
        }
    }
}

/// Ends a failed realisation as Nix does: each failure was printed as it happened; with several failed requested
/// derivations, `build of … failed`; the exit status tells the kind of failure.
fn failed(e: BuildError, targets: &[DerivedPath]) -> Result<ExitCode> {
    match e {
        BuildError::Failed { failures, status } => {
            let requested: BTreeSet<&StorePath> = targets.iter().map(|t| &t.drv).collect();
            let failed_targets: Vec<String> = failures
                .iter()
                .filter(|f| requested.contains(&f.drv))
                .map(|f| format!("'{}'", f.drv))
                .collect();
            if failed_targets.len() > 1 {
                print_error(&format!("build of {} failed", failed_targets.join(", ")));
            }
            let hint = failures.iter().any(|f| f.kind == FailureKind::HashMismatch);
            if hint {
                eprintln!("hint: copy the hash after 'got:' into the derivation and build again");
            }
            Ok(ExitCode::from(status))
        }
        other => Err(other.into()),
    }
}

fn open_store(spec: Option<&str>) -> Result<Store> {
    let config = StoreConfig::from_arg(spec)?;
    let dir = config.physical_store_dir();
    Store::open(config).with_context(|| format!("cannot open the store at {}", dir.display()))
}

/// Parses `DRV`, `DRV!out,dev` or `DRV^out` (a path of the store, or a link to one).
fn derived_path(store: &Store, text: &str) -> Result<DerivedPath> {
    let (path, outputs) = match text.split_once(['!', '^']) {
        Some((p, o)) if o != "*" => (p, Some(o.split(',').map(str::to_owned).collect::<BTreeSet<_>>())),
        Some((p, _)) => (p, None),
        None => (text, None),
    };
    let drv = store.resolve_user_path(path).with_context(|| format!("'{path}' is not a store path"))?;
    Ok(DerivedPath { drv, outputs })
}

/// Runs a realisation with the printer; prints nothing on stdout.
pub(crate) fn realise(
    store: &Store,
    options: &BuildOptions,
    targets: &[DerivedPath],
) -> Result<std::result::Result<build::Realised, ExitCode>> {
    let settings = options.settings()?;
    let printer = Printer { quiet: options.quiet };
    let substituter = crate::substitute::BuildSubstituter::open(store)?;
    let debs = crate::nixpkgs::DebBuiltin::new(store);
    let mut builder = Builder::new(store, settings)?.with_observer(&printer).with_builtins(&debs);
    if let Some(s) = &substituter {
        builder = builder.with_substituter(s);
    }
    if options.dry_run {
        let plan = builder.plan(targets, options.mode())?;
        printer.event(&Event::Planned(&plan));
        return Ok(Err(ExitCode::SUCCESS));
    }
    match builder.realise(targets, options.mode()) {
        Ok(r) => Ok(Ok(r)),
        Err(e) => failed(e, targets).map(Err),
    }
}

/// `fhskit build`.
pub fn run_build(args: BuildArgs) -> Result<ExitCode> {
    let store = open_store(args.common.store.as_deref())?;
    // Without arguments the evaluation reads ./default.nix, as nix-build does.
    // A `.drv` path (or a link to one) is built as it is, every output.
    let direct = match args.common.args.as_slice() {
        [f] if !args.common.expr && (f.ends_with(".drv") || f.contains(".drv!")) => {
            Some(derived_path(&store, f)?)
        }
        _ => None,
    };
    let (targets, selected): (Vec<DerivedPath>, Vec<(StorePath, Option<String>)>) = match direct {
        Some(t) => {
            let sel = vec![(t.drv.clone(), None)];
            (vec![t], sel)
        }
        None => {
            let pairs = match instantiate_for_build(args.common.clone()) {
                Ok(p) => p,
                Err(Ok(msg)) => {
                    eprintln!("{msg}");
                    return Ok(ExitCode::from(1));
                }
                Err(Err(e)) => return Err(e),
            };
            let mut targets: Vec<DerivedPath> = Vec::new();
            let mut selected = Vec::new();
            for (drv, output) in pairs {
                let drv = store.parse_path(&drv)?;
                match targets.iter_mut().find(|t| t.drv == drv) {
                    Some(t) => {
                        if let Some(o) = &mut t.outputs {
                            o.insert(output.clone());
                        }
                    }
                    None => targets.push(DerivedPath::outputs(drv.clone(), [output.clone()])),
                }
                selected.push((drv, Some(output)));
            }
            (targets, selected)
        }
    };
    let realised = match realise(&store, &args.options, &targets)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let mut printed = Vec::new();
    let mut counters: Vec<&StorePath> = Vec::new();
    for (drv, output) in &selected {
        let counter = match counters.iter().position(|d| *d == drv) {
            Some(i) => i,
            None => {
                counters.push(drv);
                counters.len() - 1
            }
        };
        let outs = &realised[drv];
        let chosen: Vec<(&String, &StorePath)> = match output {
            Some(o) => outs.iter().filter(|(n, _)| *n == o).collect(),
            None => outs.iter().collect(),
        };
        for (name, path) in chosen {
            if !args.no_out_link {
                let mut link = args.out_link.as_os_str().to_owned();
                if counter > 0 {
                    link.push(format!("-{}", counter + 1));
                }
                if name != "out" {
                    link.push(format!("-{name}"));
                }
                let link = PathBuf::from(link);
                store
                    .add_root(&link, path)
                    .with_context(|| format!("cannot make the GC root {}", link.display()))?;
            }
            printed.push(path.clone());
        }
    }
    let mut out = std::io::stdout().lock();
    for p in printed {
        writeln!(out, "{p}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `fhskit store realise`: builds derivations (or checks that plain paths are valid) and prints the outputs.
pub fn run_realise(
    store: &Store,
    paths: &[String],
    options: &BuildOptions,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let mut targets = Vec::new();
    let mut plain = Vec::new();
    for p in paths {
        let t = derived_path(store, p)?;
        if t.drv.is_derivation() {
            targets.push(t);
        } else {
            plain.push(t.drv);
        }
    }
    for p in &plain {
        if !store.is_valid(p)? {
            bail!("path '{p}' is not valid and cannot be built (it is not a derivation)");
        }
    }
    let realised = match realise(store, options, &targets)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    for t in &targets {
        for p in realised[&t.drv].values() {
            writeln!(out, "{p}")?;
        }
    }
    for p in plain {
        writeln!(out, "{p}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `fhskit store query --outputs`: the output paths of derivations (of the derivers of other paths: the paths).
pub fn run_query_outputs(store: &Store, paths: &[String], out: &mut impl Write) -> Result<()> {
    for p in paths {
        let path = store.resolve_user_path(p)?;
        if !path.is_derivation() {
            writeln!(out, "{path}")?;
            continue;
        }
        let drv =
            store.read_derivation(&path).with_context(|| format!("cannot read the derivation '{path}'"))?;
        for (_, o) in drv.output_paths() {
            writeln!(out, "{o}")?;
        }
    }
    Ok(())
}

/// `fhskit log PATH`: the build log of a derivation, or of the derivation that built a path.
pub fn run_log(args: LogArgs) -> Result<ExitCode> {
    let store = open_store(args.store.as_deref())?;
    let path = store.resolve_user_path(&args.path)?;
    let mut drvs = Vec::new();
    if path.is_derivation() {
        drvs.push(path.clone());
    } else {
        if let Some(d) = store.path_info(&path)?.and_then(|i| i.deriver) {
            drvs.push(d);
        }
        drvs.extend(store.derivers_of_output(&path)?);
    }
    let log_dir = store.config().physical_log_dir();
    for d in &drvs {
        if let Some(text) = build::log::read_log(&log_dir, d)? {
            let mut out = std::io::stdout().lock();
            match out.write_all(&text).and_then(|()| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.context("cannot write to stdout")?,
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    if let Some(text) = crate::substitute::remote_log(&store, &path, &drvs)? {
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.context("cannot write to stdout")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    bail!("build log of '{path}' is not available")
}
