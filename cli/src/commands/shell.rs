//! `fhskit shell` (nix-shell): a shell in the build environment of a derivation, or inside a buildFHSEnv env.
//!
//! The derivation comes from a file (default `./shell.nix`, then `./default.nix`; a directory means the same two
//! names in it), an expression (`-E`) or, with `-p`, from package names turned into nix-shell's own expression
//! (`(pkgs.runCommandCC or pkgs.runCommand) "shell" { buildInputs = [ … ]; } ""`). Its input derivations are
//! realised (substituted from binary caches or built, as `fhskit build` does), but not the derivation itself.
//!
//! Then, as nix-shell does, bash runs a generated rc file: the derivation's attributes exported (`passAsFile` ones
//! written to files), `NIX_BUILD_TOP`/`TMPDIR` and friends set to the caller's temporary directory,
//! `IN_NIX_SHELL=impure|pure`, `$stdenv/setup` sourced, `shellHook` run (through `runHook` when setup defined
//! it), then the `--run`/`--command` text or an interactive prompt. With `--pure` the caller's environment is
//! cleared except nix-shell's keep list and `--keep` names.
//!
//! fhskit's additions: a derivation naming an FHS tree in `fhskitRoot` (what our stdenv gives Debian programs in
//! the build sandbox) gets the same tree at `/` in the shell, through fhsenv's launcher, so Debian's gcc and
//! pkg-config work as in a build. A derivation with `fhskitEnv` (the `.env` of `buildFHSEnv`) is entered as that
//! env: its `runScript`, or `bash -c` the `--run`/`--command` text.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result, bail};
use build::DerivedPath;
use nix::sys::signal::Signal;
use store::{Derivation, Store, StoreConfig, StorePath};

use crate::commands::build::BuildOptions;
use crate::commands::eval::{CommonArgs, instantiate_for_build};

/// `fhskit shell` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The arguments are package attribute names (or expressions) of `<nixpkgs>`: a shell with them as inputs.
    #[arg(short = 'p', long = "packages")]
    pub packages: bool,
    /// Run this command in the shell and exit with its status (non-interactive).
    #[arg(long, value_name = "CMD", conflicts_with = "command")]
    pub run: Option<String>,
    /// Run this command in the shell, then stay in it (interactive).
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// Clear the environment first (keeping HOME, USER, DISPLAY, TERM and a few others, and --keep names).
    #[arg(long)]
    pub pure: bool,
    /// With --pure, keep this variable too (repeatable).
    #[arg(long, value_name = "NAME")]
    pub keep: Vec<String>,
    #[command(flatten)]
    pub options: BuildOptions,
}

/// Variables `--pure` keeps (nix-shell's list).
const PURE_KEEP: &[&str] = &[
    "HOME",
    "XDG_RUNTIME_DIR",
    "USER",
    "LOGNAME",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "WAYLAND_SOCKET",
    "PATH",
    "TERM",
    "IN_NIX_SHELL",
    "NIX_SHELL_PRESERVE_PROMPT",
    "TZ",
    "PAGER",
    "NIX_BUILD_SHELL",
    "SHLVL",
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "all_proxy",
    "no_proxy",
    "FHSKIT_STORE",
];

/// Attributes of a derivation nix-shell does not export (they are the builder's business).
const NOT_EXPORTED: &[&str] = &["__json"];

/// nix-shell's expression for `-p A B …`.
pub fn packages_expression(names: &[String]) -> String {
    let inputs: Vec<String> = names.iter().map(|n| format!("({n})")).collect();
    format!(
        "{{ ... }}@args: with import <nixpkgs> args; (pkgs.runCommandCC or pkgs.runCommand) \"shell\" {{ buildInputs = [ {} ]; }} \"\"",
        inputs.join(" ")
    )
}

/// The file evaluated without arguments: `shell.nix` if it exists in `dir`, else `default.nix`.
fn default_file(dir: &Path) -> PathBuf {
    let shell = dir.join("shell.nix");
    if shell.exists() { shell } else { dir.join("default.nix") }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Evaluates the arguments to one derivation and reads it.
fn instantiate(
    args: &ShellArgs,
    store: &Store,
) -> Result<std::result::Result<(StorePath, Derivation), ExitCode>> {
    let mut common = args.common.clone();
    if args.packages {
        if common.args.is_empty() {
            bail!("fhskit shell -p: no packages given");
        }
        common.args = vec![packages_expression(&common.args)];
        common.expr = true;
    } else if !common.expr {
        match common.args.as_slice() {
            [] => {
                let file = default_file(Path::new("."));
                if !file.exists() {
                    bail!("cannot start a shell: neither ./shell.nix nor ./default.nix exists");
                }
                common.args = vec![file.to_string_lossy().into_owned()];
            }
            files => {
                common.args = files
                    .iter()
                    .map(|f| {
                        let p = Path::new(f);
                        if p.is_dir() { default_file(p).to_string_lossy().into_owned() } else { f.clone() }
                    })
                    .collect();
            }
        }
    }
    let pairs = match instantiate_for_build(common) {
        Ok(p) => p,
        Err(Ok(msg)) => {
            eprintln!("{msg}");
            return Ok(Err(ExitCode::from(1)));
        }
        Err(Err(e)) => return Err(e),
    };
    let drvs: BTreeSet<&String> = pairs.iter().map(|(d, _)| d).collect();
    let drv_text = match drvs.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => (*one).clone(),
        [] => bail!("fhskit shell requires a derivation, and the expression gave none"),
        _ => bail!(
            "fhskit shell requires a single derivation, and the expression gave several (select one with -A)"
        ),
    };
    let path = store.parse_path(&drv_text)?;
    let drv = store.read_derivation(&path).with_context(|| format!("cannot read the derivation '{path}'"))?;
    Ok(Ok((path, drv)))
}

/// `fhskit shell`.
pub fn run(args: ShellArgs, verbose: u8) -> Result<ExitCode> {
    let config = StoreConfig::from_arg(args.common.store.as_deref())?;
    let store = Store::open(config.clone())
        .with_context(|| format!("cannot open the store at {}", config.physical_store_dir().display()))?;
    let (drv_path, drv) = match instantiate(&args, &store)? {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    // nix-shell builds the inputs, not the derivation itself.
    let targets: Vec<DerivedPath> = drv
        .input_drvs
        .iter()
        .map(|(d, outs)| DerivedPath::outputs(d.clone(), outs.iter().cloned()))
        .collect();
    if !targets.is_empty() {
        match crate::commands::build::realise(&store, &args.options, &targets)? {
            Ok(_) => {}
            Err(code) => return Ok(code),
        }
    }
    for src in &drv.input_srcs {
        if !store.is_valid(src)? {
            bail!("cannot start the shell of '{drv_path}': its input '{src}' is not in the store");
        }
    }
    if args.options.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let physical = |text: &str| -> Result<PathBuf> {
        let p = store.parse_path(text.trim()).with_context(|| format!("'{text}' is not a store path"))?;
        Ok(store.physical_path(&p))
    };
    if let Some(env) = drv.env.get("fhskitEnv").filter(|v| !v.is_empty()) {
        let tree = physical(env)?;
        drop(store);
        // The text of --run/--command goes to the env's bash (every buildFHSEnv env has one), else its sh.
        let sh = if tree.join("usr/bin/bash").exists() { "bash" } else { "sh" };
        let command: Vec<OsString> = match (&args.run, &args.command) {
            (Some(cmd), _) => vec![sh.into(), "-c".into(), cmd.into()],
            (None, Some(cmd)) => vec![sh.into(), "-c".into(), format!("{cmd}\nexec {sh} -i").into()],
            (None, None) => Vec::new(),
        };
        let in_shell = format!("IN_NIX_SHELL={}", if args.pure { "pure" } else { "impure" });
        let launch = crate::commands::env::LaunchArgs::for_env(tree, Vec::new(), vec![in_shell]);
        return crate::commands::env::launch_env(&launch, command, verbose);
    }
    let root = match drv.env.get(build::FHS_ROOT_ATTR).filter(|v| !v.is_empty()) {
        Some(r) => Some(shell_env(&store, &physical(r)?, &drv_path)?),
        None => None,
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!("fhskit-shell-{}-", std::process::id()))
        .tempdir()
        .context("cannot create the shell's temporary directory")?
        .keep();
    let result = shell_in(&args, &drv, &tmp, root, verbose, store);
    let _ = std::fs::remove_dir_all(&tmp);
    match result? {
        Ok(code) => Ok(code),
        // Only now, the directory being gone: dying by the signal ends this process.
        Err(sig) => Ok(crate::commands::env::die_by(sig)),
    }
}

/// Writes the rc file into `tmp` and runs the shell as a child, waiting for it: the directory is removed by this
/// process when the shell ends, however it ends (the shell's own `PATH` may have no `rm`: `--pure`, an FHS root).
fn shell_in(
    args: &ShellArgs,
    drv: &Derivation,
    tmp: &Path,
    root: Option<PathBuf>,
    verbose: u8,
    store: Store,
) -> Result<Result<ExitCode, Signal>> {
    let rc = rc_file(args, drv, tmp, root.is_some())?;
    let rc_path = tmp.join("rc");
    std::fs::write(&rc_path, rc).with_context(|| format!("cannot write {}", rc_path.display()))?;
    let interactive = args.run.is_none();
    let shell = std::env::var_os("NIX_BUILD_SHELL").unwrap_or_else(|| "bash".into());
    let mut command: Vec<OsString> = vec![shell];
    if interactive {
        command.push("--rcfile".into());
    }
    command.push(rc_path.into_os_string());
    drop(store);
    // An env's monitor takes the program into a process group of its own and stops itself on ^Z: we stop with it,
    // so the caller's shell sees the job stopped. A plain shell shares our group: the terminal stops us with it.
    let follow_stops = root.is_some();
    let child = match root {
        // Entering an env needs a single-threaded process: `fhskit env run` as the child.
        Some(env_dir) => {
            let launch = crate::commands::env::LaunchArgs::for_env(env_dir, Vec::new(), Vec::new());
            let mut cmd = std::process::Command::new("/proc/self/exe");
            if verbose > 0 {
                cmd.arg(format!("-{}", "v".repeat(verbose.into())));
            }
            cmd.args(launch.to_argv()).arg("--").args(&command);
            cmd
        }
        None => {
            let mut cmd = std::process::Command::new(&command[0]);
            cmd.args(&command[1..]);
            cmd
        }
    };
    wait_for(child, follow_stops)
        .with_context(|| format!("cannot start the shell {}", command[0].to_string_lossy()))
}

/// The shell's pid while we wait for it, for [`forward`].
static SHELL_PID: AtomicI32 = AtomicI32::new(0);

/// Passes SIGTERM and SIGHUP sent to us on to the shell (we exit when it has).
extern "C" fn forward(sig: nix::libc::c_int) {
    let pid = SHELL_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; the pid is our child's, not reaped while this handler is installed.
        unsafe { nix::libc::kill(pid, sig) };
    }
}

/// Runs `command` and waits for it as a shell waits for a foreground job: the terminal's SIGINT and SIGQUIT reach
/// the child directly (we ignore them, as system(3) does), SIGTERM and SIGHUP are forwarded. The child's exit
/// status, or the signal that killed it.
fn wait_for(mut command: std::process::Command, follow_stops: bool) -> Result<Result<ExitCode, Signal>> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, kill, sigaction};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::{Pid, getpid};

    let child = command.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    SHELL_PID.store(pid.as_raw(), Ordering::Relaxed);
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    let pass = SigAction::new(SigHandler::Handler(forward), SaFlags::SA_RESTART, SigSet::empty());
    let mut saved = Vec::new();
    for (sig, action) in [
        (Signal::SIGINT, &ignore),
        (Signal::SIGQUIT, &ignore),
        (Signal::SIGTERM, &pass),
        (Signal::SIGHUP, &pass),
    ] {
        // SAFETY: SIG_IGN runs no code; `forward` only calls kill(2), which is async-signal-safe.
        if let Ok(old) = unsafe { sigaction(sig, action) } {
            saved.push((sig, old));
        }
    }
    let flags = if follow_stops { Some(WaitPidFlag::WUNTRACED) } else { None };
    let status = loop {
        match waitpid(pid, flags) {
            Ok(WaitStatus::Exited(_, code)) => break Ok(ExitCode::from(code.clamp(0, 255) as u8)),
            Ok(WaitStatus::Signaled(_, sig, _)) => break Err(sig),
            Ok(WaitStatus::Stopped(..)) => {
                let _ = kill(getpid(), Signal::SIGSTOP);
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => {
                SHELL_PID.store(0, Ordering::Relaxed);
                return Err(anyhow::anyhow!("cannot wait for the shell: {e}"));
            }
        }
    };
    SHELL_PID.store(0, Ordering::Relaxed);
    for (sig, old) in saved {
        // SAFETY: restores the dispositions saved above.
        let _ = unsafe { sigaction(sig, &old) };
    }
    Ok(status)
}

/// The env through which the shell sees `root` (an FHS tree) at `/`: the tree itself when it is a built env,
/// else an env built over it once, in the env cache, keyed by the tree's store path.
fn shell_env(store: &Store, root: &Path, drv: &StorePath) -> Result<PathBuf> {
    if root.join(fhsenv::tree::METADATA).is_file() {
        return Ok(root.to_path_buf());
    }
    let base = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let out = crate::commands::env::cache_dir().join(format!("shell-{base}"));
    let mut spec =
        fhsenv::EnvSpec { name: drv.name().trim_end_matches(".drv").to_owned(), ..Default::default() };
    spec.packages.push(root.to_path_buf());
    spec.store_dir = Some(store.physical_store_dir().to_path_buf());
    if let Ok(built) = fhsenv::BuiltEnv::open(&out)
        && built.is_current(&spec)
    {
        return Ok(out);
    }
    fhsenv::build(&spec, &out)
        .with_context(|| format!("cannot build the shell's FHS env from {}", root.display()))?;
    Ok(out)
}

/// nix-shell's rc file: environment, setup, shellHook, then the command.
fn rc_file(args: &ShellArgs, drv: &Derivation, tmp: &Path, fhs: bool) -> Result<String> {
    let mut rc = String::new();
    if args.pure {
        let keep: Vec<&str> = PURE_KEEP.iter().copied().chain(args.keep.iter().map(String::as_str)).collect();
        writeln!(
            rc,
            "for __v in $(compgen -e); do case \" {} \" in *\" $__v \"*) ;; *) unset \"$__v\" ;; esac; done; unset __v",
            keep.join(" ")
        )?;
        if fhs {
            writeln!(rc, "PATH=/run/wrappers/bin:/usr/bin:/usr/sbin:/bin:/sbin")?;
        } else {
            writeln!(rc, "unset PATH")?;
        }
    } else {
        writeln!(rc, "[ -n \"$PS1\" ] && [ -e ~/.bashrc ] && source ~/.bashrc")?;
    }
    let top = std::env::var("TMPDIR").ok().filter(|t| !t.is_empty()).unwrap_or_else(|| "/tmp".into());
    let pass_as_file: BTreeSet<&str> =
        drv.env.get("passAsFile").map(|v| v.split_whitespace().collect()).unwrap_or_default();
    for (name, value) in &drv.env {
        if NOT_EXPORTED.contains(&name.as_str()) || !is_identifier(name) {
            continue;
        }
        if pass_as_file.contains(name.as_str()) {
            let file = tmp.join(format!(".attr-{name}"));
            std::fs::write(&file, value).with_context(|| format!("cannot write {}", file.display()))?;
            writeln!(rc, "export {name}Path={}", shell_quote(&file.to_string_lossy()))?;
            continue;
        }
        writeln!(rc, "export {name}={}", shell_quote(value))?;
    }
    for name in ["NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP"] {
        writeln!(rc, "export {name}={}", shell_quote(&top))?;
    }
    writeln!(rc, "export IN_NIX_SHELL={}", if args.pure { "pure" } else { "impure" })?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cores = args.options.cores.filter(|c| *c > 0).map_or(cores as u64, |c| c);
    writeln!(rc, "export NIX_BUILD_CORES={cores}")?;
    rc.push_str(
        "p=$PATH\n\
         dontAddDisableDepTrack=1\n\
         [ -e \"$stdenv/setup\" ] && source \"$stdenv/setup\"\n\
         PATH=$PATH${p:+:$p}\n\
         unset p\n\
         SHELL=$BASH\n\
         set +eu +o pipefail\n\
         [ -n \"$PS1\" ] && [ -z \"$NIX_SHELL_PRESERVE_PROMPT\" ] && PS1='\\n\\[\\033[1;32m\\][fhskit-shell:\\w]\\$\\[\\033[0m\\] '\n\
         if [ \"$(type -t runHook)\" = function ]; then runHook shellHook; fi\n\
         unset NIX_ENFORCE_PURITY\n\
         shopt -u nullglob\n\
         shopt -s execfail\n",
    );
    match (&args.run, &args.command) {
        (Some(cmd), _) => {
            rc.push_str(cmd);
            rc.push_str("\nexit\n");
        }
        (None, Some(cmd)) => {
            rc.push_str(cmd);
            rc.push('\n');
        }
        (None, None) => {}
    }
    Ok(rc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_expression_is_nix_shells() {
        assert_eq!(
            packages_expression(&["gcc".into(), "python3.pkgs.six".into()]),
            "{ ... }@args: with import <nixpkgs> args; (pkgs.runCommandCC or pkgs.runCommand) \"shell\" { buildInputs = [ (gcc) (python3.pkgs.six) ]; } \"\""
        );
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("shellHook") && is_identifier("_x1"));
        assert!(!is_identifier("1x") && !is_identifier("a-b") && !is_identifier(""));
    }
}
