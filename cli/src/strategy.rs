//! How a program is run with its closure: `patch` (a copy in the store with interpreter and `DT_RPATH` pointing
//! into the closure), `shim` (through the ld-shim executable with the closure's loader and library path; the file
//! untouched), `fhs` (inside an FHS env built from the closure by `fhsenv`). `auto` picks one that works here.
//!
//! The prepared result is a [`Plan`], stored as a store text (with references to everything it uses) and kept
//! alive by a GC root named after the program's identity, so the next run of the same file skips analysis and
//! resolution: it reads one small file and execs.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::ValueEnum;
use sha2::{Digest, Sha256};
use store::{Store, StoreConfig, StorePath};

use crate::closure::{Analysis, Class};
use crate::realise::{Closure, Package};

/// How to run a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Pick one that works on this host and say which.
    Auto,
    /// A patched copy in the store (interpreter and DT_RPATH into the closure).
    Patch,
    /// Through the loader shim with the closure's library path; the file is untouched.
    Shim,
    /// Inside an FHS environment built from the closure (user and mount namespaces).
    Fhs,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Patch => "patch",
            Strategy::Shim => "shim",
            Strategy::Fhs => "fhs",
        }
    }
}

/// Everything needed to start a prepared program again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub strategy: Strategy,
    /// Why `auto` chose it.
    pub reason: String,
    /// What the user named (an ELF file or a launcher script).
    pub program: PathBuf,
    /// The ELF executable.
    pub elf: PathBuf,
    pub class: Class,
    /// `e_machine` of the executable (picks the loader shim).
    pub machine: u16,
    /// patch: the patched executable (physical path).
    pub patched: Option<PathBuf>,
    /// shim: the shim executable, the loader and the library path.
    pub shim: Option<PathBuf>,
    pub loader: Option<PathBuf>,
    pub library_path: Vec<PathBuf>,
    /// fhs: the built env (physical path of its store path).
    pub env: Option<PathBuf>,
    pub packages: Vec<Package>,
    pub bundled: Vec<(String, PathBuf)>,
}

impl Plan {
    /// Whether everything the plan uses still exists (a collected store path invalidates it).
    fn usable(&self) -> bool {
        let check = |p: &Option<PathBuf>| p.as_ref().is_none_or(|p| p.exists());
        self.program.exists()
            && check(&self.patched)
            && check(&self.shim)
            && check(&self.loader)
            && check(&self.env)
    }

    /// Prints what the run uses (`--verbose`).
    pub fn describe(&self) {
        eprintln!("fhskit: {} with the {} strategy", self.program.display(), self.strategy.name());
        if self.elf != self.program {
            eprintln!("  launcher script starts {}", self.elf.display());
        }
        for (soname, path) in &self.bundled {
            eprintln!("  bundled {soname}: {}", path.display());
        }
        for p in &self.packages {
            let why = if p.provides.is_empty() {
                "dependency".to_owned()
            } else {
                p.provides.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            eprintln!("  {} {} from {} ({why}): {}", p.key, p.version, p.source, p.store_path);
        }
        if let Some(p) = &self.patched {
            eprintln!("  patched copy: {}", p.display());
        }
        if let (Some(s), Some(l)) = (&self.shim, &self.loader) {
            eprintln!("  shim {} with loader {}", s.display(), l.display());
        }
        if !self.library_path.is_empty() {
            let dirs: Vec<String> = self.library_path.iter().map(|d| d.display().to_string()).collect();
            eprintln!("  library path: {}", dirs.join(":"));
        }
        if let Some(e) = &self.env {
            eprintln!("  fhs env: {}", e.display());
        }
    }
}

/// The GC root directory that holds one link per prepared program.
fn roots_dir(config: &StoreConfig) -> PathBuf {
    config.physical_state_dir().join("gcroots/fhskit-run")
}

/// The identity of a program file and the options it was prepared with.
pub fn cache_key(program: &Path, salt: &str) -> Result<String> {
    let abs =
        std::path::absolute(program).with_context(|| format!("cannot resolve {}", program.display()))?;
    let meta = fs::metadata(&abs).with_context(|| format!("cannot run {}", abs.display()))?;
    let mut h = Sha256::new();
    h.update(abs.as_os_str().as_encoded_bytes());
    for v in [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
    ] {
        h.update(v.to_le_bytes());
    }
    h.update(salt.as_bytes());
    Ok(h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// The cached plan for `key`, when it is still usable. Opens no database: one readlink and one small read.
pub fn cached(config: &StoreConfig, key: &str) -> Option<Plan> {
    let link = roots_dir(config).join(key);
    let target = fs::read_link(&link).ok()?;
    let text = fs::read(config.physical(&target)).ok()?;
    let plan: Plan = serde_json::from_slice(&text).ok()?;
    plan.usable().then_some(plan)
}

/// Stores `plan` (with references to what it uses) and points the program's GC root at it.
pub fn remember(store: &Store, key: &str, plan: &Plan, refs: &[StorePath]) -> Result<()> {
    let text = serde_json::to_vec_pretty(plan)?;
    let name = format!("fhskit-run-{}", sanitize(&plan.program));
    let path = store.add_text(&name, &text, refs)?;
    let dir = roots_dir(store.config());
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    store.add_root(&dir.join(key), &path)?;
    Ok(())
}

/// A store-name-safe form of a file's name.
pub fn sanitize(p: &Path) -> String {
    let base = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "program".into());
    let s: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+-._?=".contains(c) { c } else { '_' })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() { "program".into() } else { s }
}

/// Whether user namespaces can be created here (what the fhs strategy needs).
pub fn namespaces_available() -> bool {
    let max = fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if max == Some(0) {
        return false;
    }
    if !nix::unistd::geteuid().is_root() {
        if let Ok(v) = fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
            && v.trim() == "0"
        {
            return false;
        }
        if let Ok(v) = fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
            && v.trim() == "1"
        {
            return false;
        }
    }
    true
}

/// The embedded shim for a class, if this fhskit was built with one.
fn shim_bytes(class: Class, machine: u16) -> Option<(ld_shim::system::System, &'static [u8])> {
    let want = match class {
        Class::Elf64 => 2,
        Class::Elf32 => 1,
    };
    ld_shim::embedded::builds().find(|(s, _)| s.class == want && s.machine == machine)
}

/// Chooses the strategy for `auto`, with the reason.
pub fn choose(analysis: &Analysis) -> (Strategy, String) {
    let ns = namespaces_available();
    if analysis.launcher.is_some() {
        return if ns {
            (Strategy::Fhs, "a launcher script starts the program, so its paths must work as they are".into())
        } else {
            (Strategy::Fhs, "a launcher script needs an FHS env, but user namespaces look unavailable".into())
        };
    }
    if analysis.is_bundle && ns {
        return (Strategy::Fhs, "an application bundle may find its files relative to itself".into());
    }
    if shim_bytes(analysis.program.class, analysis.program.machine).is_some() {
        return (Strategy::Shim, "a plain executable; the loader shim leaves it untouched".into());
    }
    (Strategy::Patch, "no loader shim for this class is built into fhskit".into())
}

/// Writes the shim for `class` into the store once; returns its physical path.
fn shim_in_store(
    store: &Store,
    class: Class,
    machine: u16,
) -> Result<(ld_shim::system::System, PathBuf, StorePath)> {
    let (system, bytes) = shim_bytes(class, machine).ok_or_else(|| {
        anyhow!(
            "this fhskit has no loader shim for {}-bit programs of machine {machine} (built without that target)",
            if class == Class::Elf32 { 32 } else { 64 }
        )
    })?;
    let tmp = tempfile::Builder::new().prefix(".fhskit-shim-").tempdir_in(store.state_dir())?;
    let file = tmp.path().join("ld-shim");
    fs::write(&file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o555))?;
    let path = store.add_tree(&format!("ld-shim-{}", system.nix), &file, &[])?;
    store.add_temp_root(&path)?;
    Ok((system, store.physical_path(&path), path))
}

/// The loader file of the closure for the program.
pub fn loader(analysis: &Analysis, closure: &Closure) -> Result<PathBuf> {
    let name = analysis
        .loader_name()
        .ok_or_else(|| anyhow!("{} has no interpreter", analysis.program.path.display()))?;
    closure
        .file(analysis.program.class, &name)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("no package of the closure provides the loader {name}"))
}

/// The library path: the bundle's own directories first (private libraries win), then the closure's.
pub fn library_path(analysis: &Analysis, closure: &Closure) -> Vec<PathBuf> {
    let mut dirs = analysis.bundle_dirs.clone();
    for d in closure.lib_dirs(analysis.program.class) {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// Applies patchelf options to the file at `path` in place (written beside it and renamed).
pub fn apply_patchelf(path: &Path, opts: &patchelf_rs::Options) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata()?.len();
    // SAFETY: read-only private map of a file we just created or the user named; see `closure::read_elf`.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
    let elf = patchelf_rs::Elf::parse(&map).map_err(|e| anyhow!("cannot patch {}: {e}", path.display()))?;
    let mut ed = patchelf_rs::Editor::new(&elf, false);
    ed.run(opts, &mut std::io::sink(), &mut std::io::sink())
        .map_err(|e| anyhow!("cannot patch {}: {e}", path.display()))?;
    let page = opts.page_size.unwrap_or_else(|| patchelf_rs::elf::default_page_size(elf.ehdr.e_machine));
    let rw = patchelf_rs::layout::plan(&ed, page, opts.clobber_old_sections, &mut std::io::sink(), false)
        .map_err(|e| anyhow!("cannot patch {}: {e}", path.display()))?;
    if rw.is_noop(&map) {
        return Ok(());
    }
    patchelf_rs::output::write(&mut file, len, path, &rw)
        .map_err(|e| anyhow!("cannot patch {}: {e}", path.display()))?;
    Ok(())
}

/// Options that point an executable at the closure: interpreter and DT_RPATH (never DT_RUNPATH, which covers only
/// the object's own NEEDED and would let transitive libraries come from the host).
pub fn patch_options(interpreter: Option<&Path>, rpath: &[PathBuf]) -> patchelf_rs::Options {
    let joined = rpath.iter().map(|d| d.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":");
    patchelf_rs::Options {
        set_interpreter: interpreter.map(|p| p.as_os_str().as_encoded_bytes().to_vec()),
        rpath: Some(patchelf_rs::RpathOp::Set(joined.into_bytes())),
        force_rpath: true,
        clobber_old_sections: true,
        ..Default::default()
    }
}

/// Prepares the plan for `strategy` (not `auto`).
pub fn prepare(
    store: &Store,
    strategy: Strategy,
    reason: String,
    program: &Path,
    analysis: &Analysis,
    closure: &Closure,
) -> Result<(Plan, Vec<StorePath>)> {
    let mut refs = closure.store_paths(store)?;
    let mut plan = Plan {
        strategy,
        reason,
        program: std::path::absolute(program)?,
        elf: analysis.program.path.clone(),
        class: analysis.program.class,
        machine: analysis.program.machine,
        patched: None,
        shim: None,
        loader: None,
        library_path: Vec::new(),
        env: None,
        packages: closure.packages.clone(),
        bundled: analysis.bundled.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    match strategy {
        Strategy::Auto => bail!("auto must be resolved to a strategy first"),
        Strategy::Patch => {
            if analysis.launcher.is_some() {
                bail!(
                    "{} is a launcher script: a patched copy of the program it starts would not be the file it runs; use --strategy fhs",
                    program.display()
                );
            }
            let loader = loader(analysis, closure)?;
            // $ORIGIN of the copy would be the store: bundled directories are named absolutely instead.
            let rpath = library_path(analysis, closure);
            let tmp = tempfile::Builder::new().prefix(".fhskit-patch-").tempdir_in(store.state_dir())?;
            let name = sanitize(&analysis.program.path);
            let file = tmp.path().join(&name);
            fs::copy(&analysis.program.path, &file)
                .with_context(|| format!("cannot copy {}", analysis.program.path.display()))?;
            fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            apply_patchelf(&file, &patch_options(Some(&loader), &rpath))?;
            let sp = store.add_tree(&format!("{name}-patched"), &file, &refs)?;
            store.add_temp_root(&sp)?;
            plan.patched = Some(store.physical_path(&sp));
            refs.push(sp);
        }
        Strategy::Shim => {
            if analysis.launcher.is_some() {
                bail!(
                    "{} is a launcher script: the shim can only start an ELF file itself; use --strategy fhs",
                    program.display()
                );
            }
            let (_, shim, sp) = shim_in_store(store, analysis.program.class, analysis.program.machine)?;
            plan.shim = Some(shim);
            plan.loader = Some(loader(analysis, closure)?);
            plan.library_path = library_path(analysis, closure);
            refs.push(sp);
        }
        Strategy::Fhs => {
            let (env, sp) = build_env(store, &sanitize(program), closure, &[])?;
            plan.env = Some(env);
            plan.library_path = analysis.bundle_dirs.clone();
            refs.push(sp);
        }
    }
    Ok((plan, refs))
}

/// Builds an FHS env of the closure's packages and puts it in the store (once per closure).
pub fn build_env(
    store: &Store,
    name: &str,
    closure: &Closure,
    extra_env: &[(String, String)],
) -> Result<(PathBuf, StorePath)> {
    let mut spec = fhsenv::EnvSpec { name: format!("{name}-fhs"), ..Default::default() };
    for p in &closure.packages {
        let arch32 = p.key.ends_with(":i386");
        if arch32 { spec.multi_packages.push(p.dir.clone()) } else { spec.packages.push(p.dir.clone()) }
    }
    spec.store_dir = Some(store.physical_store_dir().to_path_buf());
    spec.run = vec!["sh".into()];
    for (k, v) in extra_env {
        spec.env.insert(k.clone(), v.clone());
    }
    let tmp = tempfile::Builder::new().prefix(".fhskit-env-").tempdir_in(store.state_dir())?;
    let out = tmp.path().join("env");
    fhsenv::build(&spec, &out).with_context(|| format!("cannot build the FHS env for {name}"))?;
    let refs = closure.store_paths(store)?;
    let sp = store.add_tree(&format!("{name}-fhsenv"), &out, &refs)?;
    store.add_temp_root(&sp)?;
    Ok((store.physical_path(&sp), sp))
}

/// Starts the program as the plan says; returns its exit status (exec replaces this process for patch and shim).
pub fn execute(plan: &Plan, args: &[OsString]) -> Result<ExitCode> {
    match plan.strategy {
        Strategy::Patch => {
            let exe = plan.patched.as_ref().ok_or_else(|| anyhow!("plan without a patched file"))?;
            let err = std::process::Command::new(exe).arg0(&plan.program).args(args).exec();
            Err(anyhow!("cannot execute {}: {err}", exe.display()))
        }
        Strategy::Shim => {
            let shim = plan.shim.as_ref().ok_or_else(|| anyhow!("plan without a shim"))?;
            let loader = plan.loader.as_ref().ok_or_else(|| anyhow!("plan without a loader"))?;
            let system = shim_bytes(plan.class, plan.machine)
                .map(|(s, _)| s)
                .ok_or_else(|| anyhow!("no shim for this machine"))?;
            let path = std::env::join_paths(&plan.library_path)?;
            let err = std::process::Command::new(shim)
                .arg(&plan.elf)
                .args(args)
                .env(system.loader_var, loader)
                .env(system.library_path_var, path)
                .exec();
            Err(anyhow!("cannot execute {}: {err}", shim.display()))
        }
        Strategy::Fhs => {
            let env_dir = plan.env.as_ref().ok_or_else(|| anyhow!("plan without an env"))?;
            let mut command = vec![plan.program.clone().into_os_string()];
            command.extend(args.iter().cloned());
            let bind_try = app_root(&plan.program).map(|d| d.display().to_string()).into_iter().collect();
            let mut setenv = Vec::new();
            if !plan.library_path.is_empty() {
                let p = std::env::join_paths(&plan.library_path)?;
                setenv.push(format!("LD_LIBRARY_PATH={}", p.to_string_lossy()));
            }
            let launch = crate::commands::env::LaunchArgs::for_env(env_dir.clone(), bind_try, setenv);
            crate::commands::env::launch_env(&launch, command, 0)
        }
        Strategy::Auto => Err(anyhow!("auto must be resolved to a strategy first")),
    }
}

/// The directory the program lives in (its parent's parent when it sits in `bin/`): bound into the env so the
/// program and its bundle are reachable at their own paths.
fn app_root(program: &Path) -> Option<PathBuf> {
    if !program.is_absolute() {
        return None;
    }
    let dir = program.parent()?;
    let root = if dir.file_name().is_some_and(|n| n == "bin") { dir.parent()? } else { dir };
    (root != Path::new("/") && !root.starts_with("/usr")).then(|| root.to_path_buf())
}
