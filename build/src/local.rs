//! One local build, start to end (Nix's local derivation goal): take the output locks, re-check validity, make
//! the build directory and (unless unsandboxed) the sandbox, compute the environment, start the builder (or run
//! `builtin:fetchurl`), stream its log with the time limits, then register its outputs; on failure, the message
//! Nix prints, and the build directory kept or removed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::wait::WaitStatus;
use store::{Derivation, StorePath};

use crate::env::{self, EnvContext};
use crate::error::{BuildError, Failure, FailureKind};
use crate::lock::PathLocks;
use crate::log::BuildLog;
use crate::outputs::{self, Outputs};
use crate::sandbox::{self, Chroot, Identity, SandboxChild, SandboxInput};
use crate::settings::SandboxMode;
use crate::{Builder, Event};

/// One derivation to build.
pub(crate) struct Job<'a> {
    pub drv_path: &'a StorePath,
    pub drv: &'a Derivation,
    /// The closure of the inputs (input sources and the used outputs of input derivations).
    pub input_closure: &'a BTreeSet<StorePath>,
    pub check: bool,
    /// The outputs that were asked for (for messages).
    pub wanted: &'a BTreeSet<String>,
    /// Set when the realisation is being abandoned: the builder is killed.
    pub cancel: &'a AtomicBool,
    /// Where a finished sandbox goes to be torn down ([`Teardown`]); `None`: at once, in this thread.
    pub cleanup: Option<&'a std::sync::mpsc::Sender<Teardown>>,
}

/// What a sandboxed build leaves behind: the namespaces its parent held open (their mounts live in the chroot),
/// then the chroot. Dropping it tears them down in that order, which takes milliseconds (an RCU grace period for
/// the mount namespace, the network namespace's cleanup, one detach per mount point if the chroot went first):
/// the scheduler drops it on a clean-up thread, so a build's result, and the next build, do not wait for it.
#[derive(Debug, Default)]
pub(crate) struct Teardown {
    namespaces: fhsenv::isolate::HeldNamespaces,
    chroot: Option<Chroot>,
    /// A build directory to remove (see [`BuildDir`]).
    build_dir: Option<RemovedDir>,
}

/// A directory removed when dropped.
#[derive(Debug)]
struct RemovedDir(PathBuf);

impl Drop for RemovedDir {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700));
        if let Err(e) = store::fsutil::remove_tree(&self.0) {
            tracing::warn!("cannot remove the build directory {}: {e}", self.0.display());
        }
    }
}

/// Hands its [`Teardown`] to the clean-up thread when dropped (or drops it here without one).
struct Deferred<'a> {
    teardown: Teardown,
    to: Option<&'a std::sync::mpsc::Sender<Teardown>>,
}

impl Drop for Deferred<'_> {
    fn drop(&mut self) {
        let t = std::mem::take(&mut self.teardown);
        if t.namespaces.is_empty() && t.chroot.is_none() && t.build_dir.is_none() {
            return;
        }
        match self.to {
            // A closed channel hands the value back, dropped here.
            Some(tx) => drop(tx.send(t)),
            None => drop(t),
        }
    }
}

/// Why a build ended without outputs.
pub(crate) enum Stop {
    Failed(Failure),
    Cancelled,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Stop {
        Stop::Failed(f)
    }
}

type JobResult = Result<BTreeMap<String, StorePath>, Stop>;

impl Job<'_> {
    fn failure(&self, kind: FailureKind, message: impl Into<String>) -> Stop {
        Stop::Failed(Failure { drv: self.drv_path.clone(), kind, message: message.into() })
    }

    fn error(&self, e: impl std::fmt::Display) -> Stop {
        self.failure(FailureKind::Other, format!("while building '{}': {e}", self.drv_path))
    }

    /// Nix's name of the goal, as its timeout messages show it.
    fn goal_name(&self) -> String {
        let outs = if self.wanted.is_empty() {
            "*".to_owned()
        } else {
            self.wanted.iter().cloned().collect::<Vec<_>>().join(",")
        };
        format!("building of '{}!{outs}' from .drv file", self.drv_path)
    }
}

/// Builds `job` (see the module documentation).
pub(crate) fn build(b: &Builder<'_>, job: &Job<'_>) -> JobResult {
    let store = b.store;
    let outputs: Vec<StorePath> = job.drv.output_paths().map(|(_, p)| p.clone()).collect();
    let lock_files: Vec<PathBuf> = outputs
        .iter()
        .map(|p| store.state_dir().join("build-locks").join(format!("{}.lock", p.base_name())))
        .collect();
    let mut said_waiting = false;
    let mut locks = loop {
        match PathLocks::try_lock(&lock_files).map_err(|e| job.error(e))? {
            Some(l) => break l,
            None => {
                if !said_waiting {
                    let list: Vec<String> = lock_files.iter().map(|p| format!("'{}'", p.display())).collect();
                    b.observer.event(&Event::Note(&format!("waiting for lock on {}", list.join(", "))));
                    said_waiting = true;
                }
                let until = Instant::now() + b.settings.poll_interval;
                while Instant::now() < until {
                    if job.cancel.load(Ordering::Relaxed) {
                        return Err(Stop::Cancelled);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    };
    if !job.check {
        let mut all_valid = true;
        for p in &outputs {
            all_valid &= store.is_valid(p).map_err(|e| job.error(e))?;
        }
        if all_valid {
            // Someone else built it while we waited.
            locks.delete_on_drop();
            return Ok(job.drv.output_paths().map(|(n, p)| (n.to_owned(), p.clone())).collect());
        }
    }
    b.observer.event(&Event::Started { drv: job.drv_path, check: job.check });
    let result =
        if job.drv.builder.starts_with("builtin:") { build_builtin(b, job) } else { build_external(b, job) };
    if result.is_ok() {
        locks.delete_on_drop();
    }
    result
}

/// The build directory on the host: `<build-dir>/<pid>-<n>/build`; removed when dropped unless kept, on the
/// clean-up thread when there is one (removing directories from the store's file system takes milliseconds where
/// freed blocks are discarded: the next build need not wait for it).
struct BuildDir<'a> {
    top: PathBuf,
    tmp: PathBuf,
    keep: bool,
    cleanup: Option<&'a std::sync::mpsc::Sender<Teardown>>,
}

impl<'a> BuildDir<'a> {
    fn create(
        root: &Path,
        owner: Option<(u32, u32)>,
        cleanup: Option<&'a std::sync::mpsc::Sender<Teardown>>,
    ) -> Result<BuildDir<'a>, BuildError> {
        fs::create_dir_all(root).map_err(crate::error::io_err("create directory", root))?;
        let top = root.join(sandbox::unique_dir_name());
        let tmp = top.join("build");
        let io = crate::error::io_err;
        fs::create_dir(&top).map_err(io("create directory", &top))?;
        fs::set_permissions(&top, fs::Permissions::from_mode(0o700)).map_err(io("set the mode of", &top))?;
        fs::create_dir(&tmp).map_err(io("create directory", &tmp))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700)).map_err(io("set the mode of", &tmp))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).map_err(io("change the owner of", &tmp))?;
        }
        Ok(BuildDir { top, tmp, keep: false, cleanup })
    }

    /// Keeps the directory (renamed so the next builder does not take it for a killed build's leftover); returns
    /// where the build directory is now.
    fn keep(&mut self, drv: &StorePath) -> PathBuf {
        self.keep = true;
        let name = self.top.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let kept = self.top.with_file_name(format!("kept-{}-{name}", drv.name().trim_end_matches(".drv")));
        let top = if fs::rename(&self.top, &kept).is_ok() { kept } else { self.top.clone() };
        let tmp = top.join("build");
        for d in [&top, &tmp] {
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o755));
        }
        tmp
    }
}

impl Drop for BuildDir<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let dir = RemovedDir(std::mem::take(&mut self.top));
            match self.cleanup {
                // A closed channel hands the value back, dropped (removed) here.
                Some(tx) => drop(tx.send(Teardown { build_dir: Some(dir), ..Teardown::default() })),
                None => drop(dir),
            }
        }
    }
}

/// Runs a `builtin:` builder in this process.
fn build_builtin(b: &Builder<'_>, job: &Job<'_>) -> JobResult {
    let store = b.store;
    let name = job.drv.builder.trim_start_matches("builtin:");
    let scratch = sandbox::sandboxes_dir(store).join(sandbox::unique_dir_name());
    fs::create_dir_all(&scratch).map_err(|e| job.error(e))?;
    let chroot = Chroot::scratch(scratch);
    let mut log =
        BuildLog::create(&b.log_dir, job.drv_path, b.settings.compress_build_log, b.settings.log_lines)
            .map_err(|e| job.error(e))?;
    let out = job.drv.outputs.get("out").and_then(|o| o.path.clone());
    let observer = b.observer;
    let drv_path = job.drv_path;
    let mut emit = |line: &str| {
        log.write(format!("{line}\n").as_bytes(), |l| observer.event(&Event::Log { drv: drv_path, line: l }));
    };
    let result = match (name, &out) {
        ("fetchurl", Some(out)) => match known_file(b, job.drv) {
            // A file the caller already holds with this flat hash (fhskit's verified .deb cache): copied, not
            // downloaded; the output's hash is checked at registration as for a download.
            Some(file) => {
                emit(&format!("copying '{}'...", file.display()));
                fs::copy(&file, chroot.output_location(out))
                    .map(drop)
                    .map_err(|e| format!("copying '{}': {e}", file.display()))
            }
            None => crate::fetchurl::fetch(
                job.drv,
                &chroot.output_location(out),
                &b.settings.hashed_mirrors,
                &mut emit,
            ),
        },
        ("fetchurl", None) => Err("'builtin:fetchurl' requires an 'out' output".to_owned()),
        ("fhskit-root", Some(out)) => {
            crate::fhsroot::build(store, job.drv, &chroot.output_location(out), &mut emit)
        }
        ("fhsenv", Some(out)) => crate::fhsenv_builtin::build(
            store,
            job.drv,
            job.input_closure,
            &chroot.output_location(out),
            &mut emit,
        ),
        ("fhsenv", None) => Err("'builtin:fhsenv' requires an 'out' output".to_owned()),
        (other, _) => {
            let outputs: std::collections::BTreeMap<String, PathBuf> = job
                .drv
                .outputs
                .iter()
                .filter_map(|(n, o)| o.path.as_ref().map(|p| (n.clone(), chroot.output_location(p))))
                .collect();
            b.extra_builtins
                .and_then(|x| x.build(other, job.drv, &outputs, &mut emit))
                .unwrap_or_else(|| Err(format!("unsupported builtin builder '{other}'")))
        }
    };
    if let Err(e) = result {
        emit(&format!("error: {e}"));
        log.finish(|l| observer.event(&Event::Log { drv: drv_path, line: l }));
        return Err(job.failure(FailureKind::Other, builder_failed(b, job, "failed with exit code 1", &log)));
    }
    log.finish(|l| observer.event(&Event::Log { drv: drv_path, line: l }));
    register(b, job, locations_in(job, &chroot))
}

/// For a plain `builtin:fetchurl` of a flat fixed output, a file with that hash the caller's [`crate::ExtraBuiltins`]
/// already holds.
fn known_file(b: &Builder<'_>, drv: &Derivation) -> Option<PathBuf> {
    let extra = b.extra_builtins?;
    if ["unpack", "executable"].iter().any(|k| drv.env.get(*k).is_some_and(|v| v == "1")) {
        return None;
    }
    let fixed = drv.outputs.get("out")?.fixed_hash("out").ok()??;
    if fixed.mode != store::OutputHashMode::Flat {
        return None;
    }
    extra.known_file(&fixed.hash.algo().to_string(), &fixed.hash.to_hex()).filter(|f| f.is_file())
}

/// `builder for '…' failed …`, with the last log lines, as Nix 2.8 words it.
fn builder_failed(b: &Builder<'_>, job: &Job<'_>, status: &str, log: &BuildLog) -> String {
    let mut msg = format!("builder for '{}' {status}", job.drv_path);
    let tail: Vec<&str> = log.tail().collect();
    if !tail.is_empty() && !b.verbose_log {
        msg.push_str(&format!(";\nlast {} log lines:\n", tail.len()));
        for l in tail {
            msg.push_str(&format!("> {l}\n"));
        }
        msg.push_str(&format!("For full logs, run 'fhskit log {}'.", job.drv_path));
    }
    msg
}

fn status_text(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("failed with exit code {code}"),
        WaitStatus::Signaled(_, sig, _) => {
            format!("failed due to signal {} ({})", *sig as i32, signal_name(*sig))
        }
        other => format!("died abnormally ({other:?})"),
    }
}

fn signal_name(sig: nix::sys::signal::Signal) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local string, copied at once.
    unsafe {
        let p = libc::strsignal(sig as i32);
        if p.is_null() {
            return sig.as_str().to_owned();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Whether this derivation is built in the sandbox.
fn use_sandbox(b: &Builder<'_>, job: &Job<'_>, fixed_output: bool) -> Result<bool, Stop> {
    let structured = env::structured_attrs(job.drv_path, job.drv).map_err(|e| job.error(e))?;
    let no_chroot = env::bool_attr(job.drv, structured.as_ref(), "__noChroot", false);
    let wanted = match b.settings.sandbox {
        SandboxMode::On => {
            if no_chroot {
                return Err(job.failure(
                    FailureKind::Other,
                    format!(
                        "derivation '{}' has '__noChroot' set, but that's not allowed when 'sandbox' is 'true'",
                        job.drv_path
                    ),
                ));
            }
            true
        }
        SandboxMode::Relaxed => !fixed_output && !no_chroot,
        SandboxMode::Off => {
            b.warn_once_unsandboxed();
            false
        }
    };
    // A store whose files are not where its paths say can only be built into through the sandbox.
    let diverted = b.store.physical_store_dir() != b.store.store_dir().as_path();
    if !(wanted || diverted) {
        return Ok(false);
    }
    if b.namespaces_work() {
        return Ok(true);
    }
    if diverted {
        return Err(job.failure(
            FailureKind::Other,
            format!(
                "cannot build '{}' into the store {}: its files live elsewhere ({}), which needs the sandbox, and \
                 this system does not support the kernel namespaces that are required for sandboxing",
                job.drv_path,
                b.store.store_dir(),
                b.store.physical_store_dir().display()
            ),
        ));
    }
    if b.settings.sandbox_fallback {
        b.warn_once_no_sandbox();
        return Ok(false);
    }
    Err(job.failure(
        FailureKind::Other,
        "this system does not support the kernel namespaces that are required for sandboxing; use '--option \
         sandbox false' to disable sandboxing",
    ))
}

/// Starts the builder program and waits for it.
fn build_external(b: &Builder<'_>, job: &Job<'_>) -> JobResult {
    let store = b.store;
    let fixed_output = job.drv.is_fixed_output();
    let sandboxed = use_sandbox(b, job, fixed_output)?;
    if job.check && !sandboxed {
        return Err(job.failure(
            FailureKind::Other,
            format!(
                "cannot check '{}' without the sandbox: an unsandboxed rebuild would overwrite the outputs it is \
                 compared with",
                job.drv_path
            ),
        ));
    }
    let as_root = nix::unistd::geteuid().is_root();
    let t0 = Instant::now();
    let identity = if as_root && sandboxed {
        let user = loop {
            match sandbox::acquire_build_user(b.build_users(), store.state_dir()).map_err(|e| job.error(e))? {
                Some(u) => break u,
                None => {
                    b.observer.event(&Event::Note(&format!(
                        "waiting for a free build user ID for '{}'",
                        job.drv_path
                    )));
                    if job.cancel.load(Ordering::Relaxed) {
                        return Err(Stop::Cancelled);
                    }
                    std::thread::sleep(b.settings.poll_interval);
                }
            }
        };
        Identity::BuildUser { user, userns: b.userns_works() }
    } else {
        Identity::Caller { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() }
    };
    let owner = (as_root && sandboxed).then(|| identity.host_ids());
    let t_user = t0.elapsed();
    let mut build_dir = BuildDir::create(&b.build_dir, owner, job.cleanup).map_err(|e| job.error(e))?;
    let top = if sandboxed {
        b.settings.sandbox_build_dir.to_string_lossy().into_owned()
    } else {
        if Path::new("/homeless-shelter").exists() {
            return Err(job.failure(
                FailureKind::Other,
                "home directory '/homeless-shelter' exists; please remove it to assure purity of builds without \
                 sandboxing",
            ));
        }
        build_dir.tmp.to_string_lossy().into_owned()
    };
    let cx = EnvContext {
        store,
        drv: job.drv,
        input_closure: job.input_closure,
        build_top: &top,
        cores: b.cores(),
        fixed_output,
    };
    let benv =
        env::builder_env(&cx, job.drv_path).map_err(|e| job.failure(FailureKind::Builder, e.to_string()))?;
    for w in &benv.warnings {
        b.observer.event(&Event::Note(&format!("warning: {w}")));
    }
    for (name, data) in &benv.files {
        let p = build_dir.tmp.join(name);
        write_builder_file(&p, data, owner).map_err(|e| job.error(e))?;
    }
    let mut log =
        BuildLog::create(&b.log_dir, job.drv_path, b.settings.compress_build_log, b.settings.log_lines)
            .map_err(|e| job.error(e))?;
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| job.error(format!("cannot create a pipe: {e}")))?;
    let null = fs::File::open("/dev/null").map_err(|e| job.error(e))?;
    let program = PathBuf::from(&job.drv.builder);
    let argv0 =
        program.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| OsString::from(&job.drv.builder));
    let mut args = vec![argv0];
    args.extend(benv.args.iter().map(OsString::from));
    let env_list: Vec<(OsString, OsString)> =
        benv.vars.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect();
    let stdio = [null.as_raw_fd(), write_end.as_raw_fd(), write_end.as_raw_fd()];

    let mut deferred = Deferred { teardown: Teardown::default(), to: job.cleanup };
    let isolate = if sandboxed {
        let mut inputs = job.input_closure.clone();
        for sp in &b.settings.sandbox_paths {
            if let Ok(p) = store.resolve_user_path(&sp.source.to_string_lossy())
                && store.is_valid(&p).unwrap_or(false)
            {
                inputs.extend(store.closure(&[p]).map_err(|e| job.error(e))?);
            }
        }
        let fhs_root = match job.drv.env.get(sandbox::FHS_ROOT_ATTR) {
            Some(p) => {
                let root = store.parse_path(p).map_err(|e| job.error(e))?;
                if !inputs.contains(&root) {
                    return Err(job.failure(
                        FailureKind::Other,
                        format!(
                            "derivation '{}': '{}' = '{p}' is not among its inputs",
                            job.drv_path,
                            sandbox::FHS_ROOT_ATTR
                        ),
                    ));
                }
                Some(root)
            }
            None => None,
        };
        let t_prepare = Instant::now();
        let (c, mounts) = sandbox::prepare(&SandboxInput {
            store,
            fhs_root: fhs_root.as_ref(),
            settings: &b.settings,
            fixed_output,
            inputs: &inputs,
            build_dir: &build_dir.tmp,
            identity: &identity,
        })
        .map_err(|e| job.error(e))?;
        let t_landlock = Instant::now();
        let iso = sandbox::isolate(SandboxChild {
            chroot: &c,
            mounts,
            identity: &identity,
            fixed_output,
            settings: &b.settings,
            build_dir: &build_dir.tmp,
            program,
            args,
            env: env_list,
            stdio,
        })
        .map_err(|e| job.error(e))?;
        tracing::debug!(
            drv = %job.drv_path,
            chroot = ?t_landlock.duration_since(t_prepare),
            ruleset = ?t_landlock.elapsed(),
            "sandbox prepared"
        );
        deferred.teardown.chroot = Some(c);
        iso
    } else {
        // Unsandboxed, the builder writes its outputs where they go: remove what an earlier, unregistered
        // attempt left there.
        for (_, p) in job.drv.output_paths() {
            if !store.is_valid(p).map_err(|e| job.error(e))? {
                store::fsutil::remove_tree(&store.physical_path(p)).map_err(|e| job.error(e))?;
            }
        }
        fhsenv::isolate::Isolate {
            namespaces: Default::default(),
            id_map: None,
            hostname: None,
            loopback: false,
            mounts: Vec::new(),
            root: None,
            cwd: build_dir.tmp.clone(),
            program,
            args,
            env: env_list,
            stdio,
            umask: 0o022,
            switch_ids: None,
            drop_groups: false,
            new_session: true,
            no_core_dumps: true,
            no_new_privs: !b.settings.allow_new_privileges,
            landlock: None,
            die_with_parent: true,
            keep_namespaces: false,
            cover_old_root: None,
        }
    };
    let t_spawn = Instant::now();
    tracing::debug!(drv = %job.drv_path, user = ?t_user, before_spawn = ?t0.elapsed(), "prepared");
    let spawned = isolate.spawn();
    tracing::debug!(drv = %job.drv_path, spawn = ?t_spawn.elapsed(), "started");
    drop(write_end);
    drop(isolate);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("while setting up the build environment for '{}': {}", job.drv_path, chain(&e));
            return Err(job.failure(FailureKind::Other, msg));
        }
    };

    deferred.teardown.namespaces = child.take_namespaces();
    let chroot = deferred.teardown.chroot.as_ref();

    // Stream the log until the builder and everything it started are gone.
    let started = Instant::now();
    let mut last_output = started;
    let mut buf = vec![0u8; 65536];
    let mut stop: Option<String> = None;
    let mut exited: Option<(WaitStatus, Instant)> = None;
    let mut eof = false;
    let drv_path = job.drv_path;
    let observer = b.observer;
    // Until the builder has exited and the log is closed: a builder may close its output early (`exec >$out`),
    // and processes it started may hold the log open after it exits (they die with it in a pid namespace;
    // unsandboxed, its process group is killed, and a process that left the group is not waited for long).
    while !(eof && exited.is_some()) {
        let now = Instant::now();
        let mut wait = Duration::from_millis(200);
        if b.settings.max_silent_time > 0 {
            let left = Duration::from_secs(b.settings.max_silent_time).saturating_sub(now - last_output);
            if left.is_zero() && stop.is_none() {
                stop = Some(format!(
                    "{} timed out after {} seconds of silence",
                    job.goal_name(),
                    b.settings.max_silent_time
                ));
                child.kill();
                child.kill_group();
            }
            wait = wait.min(left.max(Duration::from_millis(1)));
        }
        if b.settings.timeout > 0 {
            let left = Duration::from_secs(b.settings.timeout).saturating_sub(now - started);
            if left.is_zero() && stop.is_none() {
                stop = Some(format!("{} timed out after {} seconds", job.goal_name(), b.settings.timeout));
                child.kill();
                child.kill_group();
            }
            wait = wait.min(left.max(Duration::from_millis(1)));
        }
        if job.cancel.load(Ordering::Relaxed) && stop.is_none() {
            stop = Some(String::new());
            child.kill();
            child.kill_group();
        }
        let exit_fd = if exited.is_none() { child.exit_fd().map(|f| f.as_raw_fd()) } else { None };
        if eof {
            match exit_fd {
                Some(fd) => {
                    let _ = poll_fds(&[fd], wait);
                }
                None => std::thread::sleep(wait.min(Duration::from_millis(10))),
            }
        } else {
            let fds: Vec<i32> = std::iter::once(read_end.as_raw_fd()).chain(exit_fd).collect();
            match poll_fds(&fds, wait) {
                Ok(ready) if !ready[0] => {}
                Err(nix::Error::EINTR) => {}
                Ok(_) => match nix::unistd::read(&read_end, &mut buf) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        last_output = Instant::now();
                        log.write(&buf[..n], |l| {
                            observer.event(&crate::Event::Log { drv: drv_path, line: l })
                        });
                        if b.settings.max_log_size > 0 && log.size > b.settings.max_log_size && stop.is_none()
                        {
                            stop = Some(format!(
                                "{} killed after writing more than {} bytes of log output",
                                job.goal_name(),
                                b.settings.max_log_size
                            ));
                            child.kill();
                            child.kill_group();
                        }
                    }
                    Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
                    Err(_) => eof = true,
                },
                Err(_) => eof = true,
            }
        }
        match exited {
            None => {
                if let Some(s) = child.try_wait().map_err(|e| job.error(e))? {
                    child.kill_group();
                    exited = Some((s, Instant::now()));
                }
            }
            Some((_, at)) if at.elapsed() > Duration::from_secs(1) => eof = true,
            Some(_) => {}
        }
    }
    let status = exited.map(|(s, _)| s).expect("the loop ends once the builder has exited");
    tracing::debug!(drv = %job.drv_path, ran = ?t_spawn.elapsed(), "builder exited");
    log.finish(|l| observer.event(&crate::Event::Log { drv: drv_path, line: l }));

    if let Some(why) = stop {
        if why.is_empty() {
            return Err(Stop::Cancelled);
        }
        let kind = if why.contains("timed out") { FailureKind::TimedOut } else { FailureKind::Builder };
        keep_failed(b, job, &mut build_dir, chroot);
        return Err(job.failure(kind, why));
    }
    if !matches!(status, WaitStatus::Exited(_, 0)) {
        let msg = builder_failed(b, job, &status_text(&status), &log);
        keep_failed(b, job, &mut build_dir, chroot);
        // A fixed-output builder may fail for want of network: not a permanent failure (Nix's exit status 1).
        let kind = if fixed_output { FailureKind::Other } else { FailureKind::Builder };
        return Err(job.failure(kind, msg));
    }
    let locations = match chroot {
        Some(c) => locations_in(job, c),
        None => job.drv.output_paths().map(|(n, p)| (n.to_owned(), store.physical_path(p))).collect(),
    };
    let t_reg = Instant::now();
    let result = register(b, job, locations);
    tracing::debug!(drv = %job.drv_path, register = ?t_reg.elapsed(), "registered");
    if result.is_err() {
        keep_failed(b, job, &mut build_dir, chroot);
    }
    result
}

/// An error and its causes, joined by `: `.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// Waits up to `wait` for one of `fds` to become readable (or hung up); which ones are.
fn poll_fds(fds: &[i32], wait: Duration) -> nix::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ms = wait.as_millis().min(60_000) as libc::c_int;
    // SAFETY: valid pollfds for the duration of the call.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(p.iter().map(|x| x.revents != 0).collect())
}

fn write_builder_file(path: &Path, data: &[u8], owner: Option<(u32, u32)>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(data)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// With `keep-failed`: keep the build directory and move what the builder left of its outputs to their store
/// paths (unregistered, for inspection; the collector removes them), as Nix does.
fn keep_failed(b: &Builder<'_>, job: &Job<'_>, dir: &mut BuildDir, chroot: Option<&Chroot>) {
    if !b.settings.keep_failed {
        return;
    }
    let kept = dir.keep(job.drv_path);
    b.observer.event(&Event::Note(&format!("note: keeping build directory '{}'", kept.display())));
    if let (Some(c), false) = (chroot, job.check) {
        for (_, p) in job.drv.output_paths() {
            let from = c.output_location(p);
            let to = b.store.physical_path(p);
            if fs::symlink_metadata(&from).is_ok() && !b.store.is_valid(p).unwrap_or(true) {
                let _ = store::fsutil::remove_tree(&to);
                let _ = fs::rename(&from, &to);
            }
        }
    }
}

/// Where the builder left each output in `chroot`.
fn locations_in(job: &Job<'_>, chroot: &Chroot) -> BTreeMap<String, PathBuf> {
    job.drv.output_paths().map(|(n, p)| (n.to_owned(), chroot.output_location(p))).collect()
}

fn register(b: &Builder<'_>, job: &Job<'_>, locations: BTreeMap<String, PathBuf>) -> JobResult {
    let structured = env::structured_attrs(job.drv_path, job.drv).map_err(|e| job.error(e))?;
    outputs::register(&Outputs {
        store: b.store,
        drv_path: job.drv_path,
        drv: job.drv,
        structured: structured.as_ref(),
        input_closure: job.input_closure,
        locations,
        check: job.check,
        keep_failed: b.settings.keep_failed,
    })
    .map_err(Stop::Failed)
}
