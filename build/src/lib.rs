//! build: the builder. Turns derivations (`.drv` files in the store, written by `eval` or by Nix) into valid store
//! paths, as Nix's `nix-store --realise` does.
//!
//! [`Builder::realise`] takes derivations and the outputs wanted of each, asks the [`Substituter`] (the binary
//! caches of the `cache` crate) for outputs it can provide, and builds the rest in dependency order, independent
//! derivations in parallel (`max-jobs`), each in a sandbox made with `fhsenv`'s namespace code (`sandbox`): only
//! its input closure visible, no network unless it is fixed-output. Outputs are canonicalised, scanned for
//! references and registered in the `store` with their deriver. `builtin:fetchurl` runs in-process with the
//! fixed-output hash check; `builtin:fhsenv` (fhskit's own) makes an FHS env tree with `fhsenv`. Locks keep two
//! processes from building the same output; a killed builder's temporary files are removed by the next
//! [`Builder::new`]. Library code: it reports through an [`Observer`] and never
//! prints; `cli` draws the output.
//!
//! ```no_run
//! # fn main() -> Result<(), build::BuildError> {
//! let store = store::Store::open_default()?;
//! let builder = build::Builder::new(&store, build::Settings::default())?;
//! let drv = store.parse_path("/home/me/.local/share/fhskit/store/…-hello.drv")?;
//! let built = builder.realise(&[build::DerivedPath::all(drv.clone())], build::BuildMode::Normal)?;
//! println!("{}", built[&drv]["out"]);
//! # Ok(()) }
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

mod env;
mod error;
mod fetchurl;
mod fhsenv_builtin;
mod fhsroot;
mod local;
mod lock;
pub mod log;
mod outputs;
mod sandbox;
mod scheduler;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use store::{Store, StorePath};

pub use env::hash_placeholder;
pub use error::{BuildError, Failure, FailureKind, Result, exit_status};
pub use sandbox::FHS_ROOT_ATTR;
pub use settings::{SandboxMode, SandboxPath, Settings};

/// A derivation and the outputs wanted of it (`None`: all of them), as `nix-store -r DRV` or `DRV!out,dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedPath {
    pub drv: StorePath,
    pub outputs: Option<BTreeSet<String>>,
}

impl DerivedPath {
    /// Every output of `drv`.
    pub fn all(drv: StorePath) -> DerivedPath {
        DerivedPath { drv, outputs: None }
    }

    /// The named outputs of `drv`.
    pub fn outputs(drv: StorePath, outputs: impl IntoIterator<Item = String>) -> DerivedPath {
        DerivedPath { drv, outputs: Some(outputs.into_iter().collect()) }
    }
}

/// Normal builds, or `--check`: rebuild derivations whose outputs are valid and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    Normal,
    Check,
}

/// What a realisation would do (`--dry-run`, and the summary printed before building).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Derivations to build, dependencies first.
    pub build: Vec<StorePath>,
    /// Store paths to fetch from a substituter.
    pub substitute: Vec<StorePath>,
}

/// What a realisation produced: for each requested derivation, its outputs (name → path).
pub type Realised = BTreeMap<StorePath, BTreeMap<String, StorePath>>;

/// Progress of a realisation, for the caller to show.
#[derive(Debug)]
pub enum Event<'a> {
    /// What will be built and substituted, before anything starts.
    Planned(&'a Plan),
    /// A build starts (`building '…'` / `checking outputs of '…'`).
    Started { drv: &'a StorePath, check: bool },
    /// A line of a builder's output.
    Log { drv: &'a StorePath, line: &'a str },
    /// A build succeeded.
    Built { drv: &'a StorePath },
    /// A path was substituted.
    Substituted { path: &'a StorePath },
    /// A build failed (its message; the caller may print it at once, as Nix does for builds other than the
    /// requested ones).
    Failed(&'a Failure),
    /// Something to tell the user: waiting for a lock, a kept build directory, a warning.
    Note(&'a str),
}

/// Receives the [`Event`]s of a realisation (from several threads).
pub trait Observer: Sync {
    fn event(&self, event: &Event<'_>);
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &Event<'_>) {}
}

/// Where outputs can come from instead of a build: the binary caches. Asked before each derivation is built (when
/// `substitute` is on and the derivation allows it) and for missing inputs.
pub trait Substituter: Sync {
    /// Whether a substitute for `path` is known to exist (for plans and `--dry-run`; may answer `false` when
    /// finding out would take long).
    fn has(&self, _path: &StorePath) -> bool {
        false
    }

    /// Makes `path` and its closure valid in `store` from a substitute; `Ok(false)` when none has it.
    fn substitute(
        &self,
        store: &Store,
        path: &StorePath,
    ) -> std::result::Result<bool, Box<dyn std::error::Error + Send + Sync>>;
}

/// Builders of `builtin:<name>` derivations that the caller provides besides Nix's own (fhskit's package set uses
/// `builtin:fhskit-deb`). They run in the builder's process, like `builtin:fetchurl`.
pub trait ExtraBuiltins: Sync {
    /// Builds `drv`, whose builder is `builtin:<name>`, writing each output at its path in `outputs` (on the host;
    /// none exists yet). `None` when this is not one of its builders; errors are log text.
    fn build(
        &self,
        name: &str,
        drv: &store::Derivation,
        outputs: &BTreeMap<String, PathBuf>,
        log: &mut dyn FnMut(&str),
    ) -> Option<std::result::Result<(), String>>;

    /// A file whose flat hash is `hex` (algorithm `algo`, e.g. `sha256`), if the caller holds one: a
    /// `builtin:fetchurl` of that hash copies it instead of downloading.
    fn known_file(&self, algo: &str, hex: &str) -> Option<PathBuf> {
        let _ = (algo, hex);
        None
    }
}

/// The builder of one store. Cheap to create; [`Builder::new`] removes what builders killed earlier left behind.
pub struct Builder<'a> {
    store: &'a Store,
    settings: Settings,
    substituter: Option<&'a dyn Substituter>,
    observer: &'a dyn Observer,
    extra_builtins: Option<&'a dyn ExtraBuiltins>,
    log_dir: PathBuf,
    build_dir: PathBuf,
    verbose_log: bool,
    userns: OnceLock<bool>,
    /// Looked up at the first build that needs them, then kept for the run.
    build_users: OnceLock<Vec<(u32, u32)>>,
    cores: OnceLock<usize>,
    warned_no_sandbox: AtomicBool,
}

impl std::fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("store", &self.store.store_dir())
            .field("settings", &self.settings)
            .finish()
    }
}

impl<'a> Builder<'a> {
    /// A builder for `store` with `settings`. Removes the sandboxes and build directories of builders that are no
    /// longer running (a killed process leaves them).
    pub fn new(store: &'a Store, settings: Settings) -> Result<Builder<'a>> {
        let build_dir = settings.build_dir.clone().unwrap_or_else(|| store.state_dir().join("builds"));
        let builder = Builder {
            store,
            log_dir: store.config().physical_log_dir(),
            build_dir,
            settings,
            substituter: None,
            observer: &Quiet,
            extra_builtins: None,
            verbose_log: false,
            userns: OnceLock::new(),
            build_users: OnceLock::new(),
            cores: OnceLock::new(),
            warned_no_sandbox: AtomicBool::new(false),
        };
        scheduler::remove_stale(&sandbox::sandboxes_dir(store));
        scheduler::remove_stale(&builder.build_dir);
        Ok(builder)
    }

    /// Asks `substituter` before building.
    pub fn with_substituter(mut self, substituter: &'a dyn Substituter) -> Builder<'a> {
        self.substituter = Some(substituter);
        self
    }

    /// Builds `builtin:<name>` derivations with `extra` where Nix's own builtins do not cover the name.
    pub fn with_builtins(mut self, extra: &'a dyn ExtraBuiltins) -> Builder<'a> {
        self.extra_builtins = Some(extra);
        self
    }

    /// Reports progress to `observer`.
    pub fn with_observer(mut self, observer: &'a dyn Observer) -> Builder<'a> {
        self.observer = observer;
        self
    }

    /// Leaves the last log lines out of failure messages (the caller shows the whole log as it comes).
    pub fn with_verbose_log(mut self, verbose: bool) -> Builder<'a> {
        self.verbose_log = verbose;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where build logs are kept.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.log_dir
    }

    /// What realising `targets` would build and substitute, without doing it.
    pub fn plan(&self, targets: &[DerivedPath], mode: BuildMode) -> Result<Plan> {
        Ok(scheduler::Graph::plan(self, targets, mode, true)?.plan)
    }

    /// Makes the wanted outputs of `targets` valid: substituted, built, or (with [`BuildMode::Check`]) rebuilt
    /// and compared. Fails with [`BuildError::Failed`] listing each failed derivation when any did.
    pub fn realise(&self, targets: &[DerivedPath], mode: BuildMode) -> Result<Realised> {
        scheduler::realise(self, targets, mode)
    }

    /// The build users root may take (see [`sandbox::build_user_candidates`]).
    fn build_users(&self) -> &[(u32, u32)] {
        self.build_users.get_or_init(|| sandbox::build_user_candidates(&self.settings))
    }

    /// `NIX_BUILD_CORES`: `std::thread::available_parallelism` reads the cgroup's CPU quota each time it is asked.
    fn cores(&self) -> usize {
        *self.cores.get_or_init(|| self.settings.effective_cores())
    }

    fn userns_works(&self) -> bool {
        *self.userns.get_or_init(fhsenv::isolate::user_namespaces_work)
    }

    /// Whether sandboxes can be made: user namespaces, or root (which needs none).
    fn namespaces_work(&self) -> bool {
        self.userns_works() || nix::unistd::geteuid().is_root()
    }

    fn warn_once_unsandboxed(&self) {
        if !self.warned_no_sandbox.swap(true, Ordering::Relaxed) {
            self.observer.event(&Event::Note(
                "warning: building without the sandbox ('sandbox' is false): builders see the whole host, its \
                 network and its files",
            ));
        }
    }

    fn warn_once_no_sandbox(&self) {
        if !self.warned_no_sandbox.swap(true, Ordering::Relaxed) {
            self.observer.event(&Event::Note(
                "warning: auto-disabling sandboxing because the prerequisite namespaces are not available and \
                 'sandbox-fallback' is enabled; use '--option sandbox false' to silence this warning",
            ));
        }
    }
}
