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

#[derive(Debug, Clone, Args)]
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
    /// Also bind a host path, at the same path or at DEST (repeatable; added to the spec's `bind` list).
    #[arg(long, value_name = "SRC[:DEST]")]
    bind: Vec<String>,
    /// Like --bind, but skipped when SRC does not exist.
    #[arg(long, value_name = "SRC[:DEST]")]
    bind_try: Vec<String>,
    /// Like --bind, read-only.
    #[arg(long, value_name = "SRC[:DEST]")]
    ro_bind: Vec<String>,
    /// Set an environment variable inside (repeatable; overrides the spec's `env`).
    #[arg(long, value_name = "NAME=VALUE")]
    setenv: Vec<String>,
}

impl LaunchArgs {
    /// Arguments for `env run` on a built env, with extra binds and variables (how `fhskit run` re-enters).
    pub fn for_env(env: PathBuf, bind_try: Vec<String>, setenv: Vec<String>) -> LaunchArgs {
        LaunchArgs {
            env,
            mode: None,
            fake_root: false,
            exec: false,
            kill_grace: 3,
            dry_run: false,
            bind: Vec::new(),
            bind_try,
            ro_bind: Vec::new(),
            setenv,
        }
    }

    /// The same request as `fhskit env run` arguments.
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> =
            vec!["env".into(), "run".into(), "--kill-grace".into(), self.kill_grace.to_string().into()];
        for (flag, values) in [
            ("--bind", &self.bind),
            ("--bind-try", &self.bind_try),
            ("--ro-bind", &self.ro_bind),
            ("--setenv", &self.setenv),
        ] {
            for v in values {
                argv.push(flag.into());
                argv.push(v.into());
            }
        }
        if let Some(mode) = self.mode {
            argv.push("--mode".into());
            argv.push(if matches!(mode, ModeArg::Nixos) { "nixos" } else { "overlay" }.into());
        }
        if self.fake_root {
            argv.push("--fake-root".into());
        }
        if self.exec {
            argv.push("--exec".into());
        }
        argv.push(self.env.clone().into_os_string());
        argv
    }

    /// Adds the command-line binds and variables to the env's spec.
    fn apply(&self, env: &mut BuiltEnv) -> anyhow::Result<()> {
        let spec = &mut env.metadata.spec;
        for (values, read_only, optional) in
            [(&self.bind, false, false), (&self.bind_try, false, true), (&self.ro_bind, true, false)]
        {
            for value in values {
                let (source, target) = match value.split_once(':') {
                    Some((s, t)) => (PathBuf::from(s), Some(PathBuf::from(t))),
                    None => (PathBuf::from(value), None),
                };
                if !source.is_absolute() || target.as_ref().is_some_and(|t| !t.is_absolute()) {
                    anyhow::bail!("invalid bind {value:?}: paths must be absolute");
                }
                spec.bind.push(fhsenv::spec::BindSpec { source, target, read_only, optional });
            }
        }
        for value in &self.setenv {
            let (name, val) = value
                .split_once('=')
                .filter(|(n, _)| !n.is_empty())
                .with_context(|| format!("invalid --setenv {value:?}: expected NAME=VALUE"))?;
            spec.env.insert(name.to_owned(), val.to_owned());
        }
        Ok(())
    }
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

/// `fhskit env run` read by a parser of that command alone, as [`crate::commands::run::cached_plan`] reads `run`:
/// building the parser of every command costs more than the rest of reading the arguments. Whatever it does not
/// take (global options, `--help`, a mistake) is left to the full parser, which reports it.
pub fn quick_run_args(argv: &[OsString]) -> Option<(LaunchArgs, Vec<OsString>)> {
    use clap::Parser as _;
    if argv.get(1).is_none_or(|a| a != "env") || argv.get(2).is_none_or(|a| a != "run") {
        return None;
    }
    let args = RunOnly::try_parse_from(&argv[3..]).ok()?;
    Some((args.launch, args.command))
}

/// The arguments of `fhskit env run`, as [`EnvCommand::Run`] takes them.
#[derive(Debug, clap::Parser)]
#[command(no_binary_name = true)]
struct RunOnly {
    #[command(flatten)]
    launch: LaunchArgs,
    #[arg(last = true)]
    command: Vec<OsString>,
}

/// Where built envs of env.toml files (and of shells) are kept.
pub(crate) fn cache_dir() -> PathBuf {
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

/// Reads an env.toml, refusing a Nix file with a hint (a buildFHSEnv expression is built, not read as a spec).
fn load_spec(path: &Path) -> anyhow::Result<EnvSpec> {
    if path.extension().is_some_and(|e| e == "nix") {
        return Err(crate::hint::hinted(
            format!(
                "cannot use {} as an env: it is a Nix file, and env takes an env.toml or a built env",
                path.display()
            ),
            format!("build a buildFHSEnv expression with `fhskit build {}`", path.display()),
        ));
    }
    let mut spec = EnvSpec::load(path)?;
    resolve_names(path, &mut spec)?;
    Ok(spec)
}

/// The entries of `packages` and `multi_packages` that are package names: no `/` (paths are written `./dir`,
/// `/abs` or `~/dir`).
fn package_names(text: &str, key: &str) -> Vec<String> {
    let Ok(value) = toml::from_str::<toml::Table>(text) else { return Vec::new() };
    let Some(list) = value.get(key).and_then(|v| v.as_array()) else { return Vec::new() };
    list.iter().filter_map(|v| v.as_str()).filter(|s| is_package_name(s)).map(str::to_owned).collect()
}

fn is_package_name(entry: &str) -> bool {
    !entry.is_empty() && !entry.contains('/') && !entry.starts_with('~') && entry != "." && entry != ".."
}

/// Replaces the package names of an env.toml (`zlib`, `xorg.libX11`, `debian.libasound2`: attribute paths of
/// `<nixpkgs>`) by the store paths of the packages and their Debian dependencies, realised (substituted or
/// built) as `fhskit build` does; a name in `multi_packages` also brings its i386 half (`pkgsi686Linux`).
fn resolve_names(path: &Path, spec: &mut EnvSpec) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let names = package_names(&text, "packages");
    let multi = package_names(&text, "multi_packages");
    if names.is_empty() && multi.is_empty() {
        return Ok(());
    }
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let action = format!("cannot resolve the package names of {}", path.display());
    let native = realise_names(&names.iter().chain(&multi).cloned().collect::<Vec<_>>(), false)
        .with_context(|| action.clone())?;
    let i386 = realise_names(&multi, true).with_context(|| action.clone())?;
    let named: Vec<PathBuf> = names.iter().chain(&multi).map(|n| base.join(n)).collect();
    let mut packages: Vec<PathBuf> = spec.packages.iter().filter(|p| !named.contains(p)).cloned().collect();
    let mut multi_packages: Vec<PathBuf> =
        spec.multi_packages.iter().filter(|p| !named.contains(p)).cloned().collect();
    // Names come first, in the order given (each package once): the first package providing a path wins.
    let mut seen = std::collections::BTreeSet::new();
    let mut front: Vec<PathBuf> = native.into_iter().filter(|p| seen.insert(p.clone())).collect();
    front.append(&mut packages);
    spec.packages = front;
    let mut front: Vec<PathBuf> = i386.into_iter().filter(|p| seen.insert(p.clone())).collect();
    front.append(&mut multi_packages);
    spec.multi_packages = front;
    Ok(())
}

/// The store paths of the packages `names` name (with `i386`, in `pkgsi686Linux`) and of their Debian
/// dependencies, realised.
fn realise_names(names: &[String], i386: bool) -> anyhow::Result<Vec<PathBuf>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let quoted: Vec<String> = names
        .iter()
        .map(|n| format!("\"{}\"", n.replace('\\', "\\\\").replace('"', "\\\"").replace("${", "\\${")))
        .collect();
    let set = if i386 { "pkgs.pkgsi686Linux" } else { "pkgs" };
    let expr = format!(
        "let pkgs = import <nixpkgs> {{ }}; set = {set}; \
         get = name: builtins.foldl' (s: n: s.${{n}} or (throw \"env.toml: <nixpkgs> has no package '${{name}}'\")) set \
         (builtins.filter builtins.isString (builtins.split \"[.]\" name)); \
         in pkgs.buildFHSEnvClosure [ ] (map get [ {} ])",
        quoted.join(" ")
    );
    let common = crate::commands::eval::common_args(&["-E".to_owned(), expr])?;
    let pairs = match crate::commands::eval::instantiate_for_build(common) {
        Ok(p) => p,
        Err(Ok(msg)) => anyhow::bail!("{}", msg.trim_start_matches("error: ").trim_end()),
        Err(Err(e)) => return Err(e),
    };
    let config = store::StoreConfig::from_env()?;
    let store = store::Store::open(config)?;
    let mut targets: Vec<build::DerivedPath> = Vec::new();
    let mut wanted = Vec::new();
    for (drv, output) in pairs {
        let drv = store.parse_path(&drv)?;
        targets.push(build::DerivedPath::outputs(drv.clone(), [output.clone()]));
        wanted.push((drv, output));
    }
    let options = crate::commands::build::BuildOptions::default();
    let realised = match crate::commands::build::realise(&store, &options, &targets)? {
        Ok(r) => r,
        Err(code) => anyhow::bail!("building the packages failed (exit status {code:?})"),
    };
    Ok(wanted.iter().map(|(drv, output)| store.physical_path(&realised[drv][output])).collect())
}

/// Makes every store path an env uses a GC root (links in `<env>.roots/`), so `fhskit store gc` cannot remove
/// what the built env's links point to; the previous roots of the env are replaced.
fn root_packages(spec: &EnvSpec, out: &Path) -> anyhow::Result<()> {
    let dirs: Vec<&Path> = spec.all_packages().map(|(p, _)| p).collect();
    let config = store::StoreConfig::from_env()?;
    let store_dir = config.physical_store_dir();
    if !dirs.iter().any(|d| d.starts_with(&store_dir) || d.starts_with(config.store_dir.as_path())) {
        return Ok(());
    }
    let store = store::Store::open(config)?;
    let roots = out.with_file_name(format!(
        "{}.roots",
        out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    if roots.exists() {
        std::fs::remove_dir_all(&roots).with_context(|| format!("cannot remove {}", roots.display()))?;
    }
    std::fs::create_dir_all(&roots).with_context(|| format!("cannot create {}", roots.display()))?;
    for d in dirs {
        let Ok(path) = store.resolve_user_path(&d.to_string_lossy()) else { continue };
        let link = roots.join(path.base_name());
        store
            .add_root(&link, &path)
            .with_context(|| format!("cannot make the GC root {}", link.display()))?;
    }
    Ok(())
}

fn build(spec_path: &Path, out: Option<&Path>, verbose: u8) -> anyhow::Result<ExitCode> {
    let spec = load_spec(spec_path)?;
    crate::substitute::realise_dirs(spec.all_packages().map(|(p, _)| p))?;
    let out = out.map_or_else(|| default_out(spec_path, &spec), Path::to_path_buf);
    let report =
        fhsenv::build(&spec, &out).with_context(|| format!("failed to build env {}", spec_path.display()))?;
    root_packages(&spec, &out)?;
    print_report(&report, &out, verbose);
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Opens ENV: a built directory, or an env.toml built (or rebuilt) into the cache.
fn open_env(env: &Path, verbose: u8) -> anyhow::Result<BuiltEnv> {
    if env.is_dir() {
        // A link to a built env (`./result`) is entered as the directory it names: the launcher binds that.
        let dir = std::fs::canonicalize(env).with_context(|| format!("cannot resolve {}", env.display()))?;
        return Ok(BuiltEnv::open(&dir)?);
    }
    let spec = load_spec(env)?;
    crate::substitute::realise_dirs(spec.all_packages().map(|(p, _)| p))?;
    let out = default_out(env, &spec);
    if let Ok(built) = BuiltEnv::open(&out)
        && built.is_current(&spec)
    {
        return Ok(built);
    }
    let report =
        fhsenv::build(&spec, &out).with_context(|| format!("failed to build env {}", env.display()))?;
    root_packages(&spec, &out)?;
    if verbose > 0 {
        print_report(&report, &out, verbose);
    }
    Ok(BuiltEnv::open(&out)?)
}

fn notify(line: &str) {
    eprintln!("{line}");
}

/// Runs `command` in the env of `args`. Namespaces can only be entered by a single-threaded process, so a caller
/// that has started threads (downloads, hashing) re-executes fhskit as `fhskit env run …` instead.
pub fn launch_env(args: &LaunchArgs, command: Vec<OsString>, verbose: u8) -> anyhow::Result<ExitCode> {
    // This process lives on as the program's monitor, holding the little it allocated: returning that to the
    // system (before forking and again at exit) would cost more than it saves.
    crate::keep_freed_memory();
    if !args.dry_run && !fhsenv::userns::single_threaded() {
        return reexec(args, command, verbose);
    }
    let mut env = open_env(&args.env, verbose)?;
    // Opening an env.toml with package names evaluates and builds, which starts threads: enter the built
    // directory from a fresh process.
    if !args.dry_run && !fhsenv::userns::single_threaded() {
        let built = LaunchArgs { env: env.root.clone(), ..args.clone() };
        return reexec(&built, command, verbose);
    }
    args.apply(&mut env)?;
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

/// Re-executes fhskit as `fhskit env run …` with the same request (namespaces need a single-threaded process).
fn reexec(args: &LaunchArgs, command: Vec<OsString>, verbose: u8) -> anyhow::Result<ExitCode> {
    let mut argv = args.to_argv();
    argv.push("--".into());
    argv.extend(command);
    let mut cmd = std::process::Command::new("/proc/self/exe");
    if verbose > 0 {
        cmd.arg(format!("-{}", "v".repeat(verbose.into())));
    }
    let err = std::os::unix::process::CommandExt::exec(cmd.args(argv));
    anyhow::bail!("cannot re-execute fhskit to enter env {}: {err}", args.env.display())
}

/// Dies by the signal that killed the program, so our caller sees the same status; 128+n if it cannot.
pub fn die_by(sig: nix::sys::signal::Signal) -> ExitCode {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    /// What the full parser makes of an `env run` command line, in the same form.
    fn full(words: &[&str]) -> Option<(LaunchArgs, Vec<OsString>)> {
        match crate::Cli::try_parse_from(argv(words)).ok()?.command {
            crate::Command::Env { command: EnvCommand::Run { launch, command } } => Some((launch, command)),
            _ => None,
        }
    }

    #[test]
    fn the_quick_env_run_parser_reads_what_the_full_one_reads() {
        for words in [
            &["fhskit", "env", "run", "e"][..],
            &["fhskit", "env", "run", "--fake-root", "--mode", "overlay", "e", "--", "prog", "-x", "--", "y"],
            &["fhskit", "env", "run", "--kill-grace", "7", "--exec", "--dry-run", "./e", "--", "a b"],
            &["fhskit", "env", "run", "e", "--", "--weird"],
        ] {
            let quick = quick_run_args(&argv(words)).expect("the quick parser takes it");
            assert_eq!(format!("{quick:?}"), format!("{:?}", full(words).unwrap()), "{words:?}");
        }
    }

    #[test]
    fn the_quick_env_run_parser_leaves_the_rest_to_the_full_one() {
        for words in [
            &["fhskit", "env", "run", "-v", "e"][..],
            &["fhskit", "env", "run", "--option", "sandbox", "false", "e"],
            &["fhskit", "env", "run", "--help"],
            &["fhskit", "env", "run", "--bogus", "e"],
            &["fhskit", "env", "run"],
            &["fhskit", "env", "enter", "e"],
            &["fhskit", "-v", "env", "run", "e"],
        ] {
            assert!(quick_run_args(&argv(words)).is_none(), "{words:?}");
        }
    }
}
