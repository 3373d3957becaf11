//! How a program is run with its closure, and the plan that makes the next start immediate.
//!
//! - `patch`: a copy in the store with interpreter and run paths pointing into the closure. The application
//!   directory is mirrored (symlinks to everything the program may read beside itself) with patched copies of every
//!   object that needs something from outside the bundle (autoPatchelf's rule: each keeps its own `$ORIGIN` entries
//!   first), and closure libraries whose own run path names FHS directories (`libpulse.so.0`) get patched copies in
//!   `.fhskit-libs/`. The program runs as that copy, which is what `/proc/self/exe` names.
//! - `shim`: the file untouched; in a private mount namespace fhskit's loader shim appears at the program's
//!   interpreter path (`fhsenv::interp`) and the program itself is executed, the shim chain-loading the closure's
//!   loader with the closure's library path (kept from children's `LD_LIBRARY_PATH`).
//! - `fhs`: inside an FHS env built from the closure (`fhsenv`), with the program's own unpacked package tree and
//!   the closure's alternatives links in it.
//!
//! In every strategy `/proc/self/exe` is the program (its patched copy for `patch`), so programs that re-execute
//! themselves work. `auto` picks `fhs` for launcher scripts, `shim` when user namespaces work, else `patch`. The
//! prepared [`Plan`] is a store text referring to everything it uses, kept alive by a GC root named after the
//! program's identity: the next run of the same file reads that one file and execs.

use std::collections::BTreeSet;
use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::ValueEnum;
use patchelf_rs::dynamic::{Class, DynamicInfo, multiarch_triplet};
use pkgs::closure::{Closure, Origin};
use sha2::{Digest, Sha256};
use store::{Store, StoreConfig, StorePath};

use crate::analysis::Analysis;

/// How to run a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Pick one that works on this host and say which.
    Auto,
    /// A patched copy in the store (interpreter and run paths into the closure).
    Patch,
    /// Through the loader shim mounted at the program's interpreter path; the file is untouched.
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

/// A package of a plan, for `--verbose`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlanPackage {
    /// `name:arch`.
    pub key: String,
    pub version: String,
    pub store_path: String,
    /// `host` or `repository`.
    pub source: String,
    /// The needs it is there for (empty: a dependency of another package).
    pub provides: Vec<String>,
}

impl PlanPackage {
    /// The packages of a closure.
    pub fn of(closure: &Closure) -> Vec<PlanPackage> {
        closure
            .packages
            .iter()
            .map(|p| PlanPackage {
                key: p.key.clone(),
                version: p.version.clone(),
                store_path: p.location.clone(),
                source: if p.origin == Origin::Host { "host" } else { "repository" }.into(),
                provides: p.provides.iter().cloned().collect(),
            })
            .collect()
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
    /// 32 or 64.
    pub class: u8,
    /// `e_machine` of the executable (picks the loader shim).
    pub machine: u16,
    /// What is executed: the patched copy (patch), the ELF file (shim), the program inside the env (fhs).
    pub exec: PathBuf,
    /// Variables the program gets, unless the caller set them (graphics driver paths).
    pub env: Vec<(String, String)>,
    /// shim: the shim, where it appears (the program's interpreter path), the real loader, the library path and
    /// where overlay layers are kept.
    pub shim: Option<PathBuf>,
    pub interpreter: Option<PathBuf>,
    pub loader: Option<PathBuf>,
    pub library_path: Vec<PathBuf>,
    pub layers: Option<PathBuf>,
    /// fhs: the built env and the host paths bound into it.
    pub env_dir: Option<PathBuf>,
    pub binds: Vec<PathBuf>,
    pub packages: Vec<PlanPackage>,
    pub bundled: Vec<(String, PathBuf)>,
    /// patch: the objects patched (original paths).
    pub patched: Vec<PathBuf>,
    pub left_out: Vec<String>,
}

impl Plan {
    /// Whether everything the plan uses still exists (a collected store path invalidates it).
    fn usable(&self) -> bool {
        let check = |p: &Option<PathBuf>| p.as_ref().is_none_or(|p| p.exists());
        self.program.exists()
            && self.exec.exists()
            && check(&self.shim)
            && check(&self.loader)
            && check(&self.env_dir)
    }

    /// Prints what the run uses (`--verbose`).
    pub fn describe(&self) {
        eprintln!(
            "fhskit: {} with the {} strategy ({})",
            self.program.display(),
            self.strategy.name(),
            self.reason
        );
        if self.elf != self.program {
            eprintln!("  launcher script starts {}", self.elf.display());
        }
        for (soname, path) in &self.bundled {
            eprintln!("  bundled {soname}: {}", path.display());
        }
        for p in &self.packages {
            let why = if p.provides.is_empty() { "dependency".to_owned() } else { p.provides.join(", ") };
            eprintln!("  {} {} from {} ({why}): {}", p.key, p.version, p.source, p.store_path);
        }
        for l in &self.left_out {
            eprintln!("  left out: {l}");
        }
        if self.strategy == Strategy::Patch {
            eprintln!("  patched copy: {}", self.exec.display());
            for p in &self.patched {
                eprintln!("  patched: {}", p.display());
            }
        }
        if let (Some(s), Some(l), Some(i)) = (&self.shim, &self.loader, &self.interpreter) {
            eprintln!("  shim {} at {} with loader {}", s.display(), i.display(), l.display());
        }
        if !self.library_path.is_empty() {
            let dirs: Vec<String> = self.library_path.iter().map(|d| d.display().to_string()).collect();
            eprintln!("  library path: {}", dirs.join(":"));
        }
        for (k, v) in &self.env {
            if !k.starts_with("NIX_LD") {
                eprintln!("  {k}={v}");
            }
        }
        if let Some(e) = &self.env_dir {
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

/// Whether user namespaces can be created here (what the shim and fhs strategies need).
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
    ld_shim::embedded::builds().find(|(s, _)| s.class == class_id(class) && s.machine == machine)
}

fn class_id(class: Class) -> u8 {
    match class {
        Class::Elf64 => 2,
        Class::Elf32 => 1,
    }
}

/// Chooses the strategy for `auto`, with the reason.
pub fn choose(analysis: &Analysis) -> (Strategy, String) {
    let ns = namespaces_available();
    if !analysis.launchers.is_empty() {
        let why = "a launcher script starts the program, so the paths it names must exist";
        return (
            Strategy::Fhs,
            if ns { why.into() } else { format!("{why}; user namespaces look unavailable") },
        );
    }
    if !ns {
        return (Strategy::Patch, "user namespaces are unavailable here, so a patched copy runs".into());
    }
    let shim_ok = shim_bytes(analysis.class(), analysis.machine()).is_some()
        && analysis
            .program()
            .interpreter
            .as_ref()
            .is_some_and(|i| fhsenv::interp::provision(Path::new(i)).is_ok());
    if shim_ok {
        (Strategy::Shim, "the program runs in place through the loader shim".into())
    } else {
        (Strategy::Fhs, "the loader shim cannot appear at this program's interpreter path here".into())
    }
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
            class.bits()
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
fn loader(analysis: &Analysis, closure: &Closure) -> Result<PathBuf> {
    let name = analysis
        .program()
        .loader_name()
        .ok_or_else(|| anyhow!("{} has no interpreter", analysis.program().path.display()))?;
    closure
        .file(analysis.class(), &name)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("no package of the closure provides the loader {name}"))
}

/// The library path: the bundle's own directories first (private libraries win), then the closure's.
fn library_path(analysis: &Analysis, closure: &Closure) -> Vec<PathBuf> {
    let mut dirs = analysis.bundle.dirs.clone();
    for d in closure.lib_dirs(analysis.class()) {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// Variables that point programs at closure data their libraries would look for at compiled-in FHS paths: Mesa's
/// DRI drivers and glvnd's EGL vendor files (the fhs strategy has them at those paths).
fn graphics_env(closure: &Closure, class: Class, machine: u16) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let Some(triplet) = multiarch_triplet(class, machine) else { return env };
    if let Some(dri) = closure
        .packages
        .iter()
        .map(|p| p.dir.join("usr/lib").join(triplet).join("dri"))
        .find(|d| d.join("swrast_dri.so").exists())
    {
        env.push(("LIBGL_DRIVERS_PATH".into(), dri.display().to_string()));
    }
    if let Some(egl) =
        closure.packages.iter().map(|p| p.dir.join("usr/share/glvnd/egl_vendor.d")).find(|d| d.is_dir())
    {
        env.push(("__EGL_VENDOR_LIBRARY_DIRS".into(), egl.display().to_string()));
    }
    env
}

/// Applies patchelf options to the file at `path` in place (written beside it and renamed).
pub fn apply_patchelf(path: &Path, opts: &patchelf_rs::Options) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata()?.len();
    // SAFETY: read-only private map of a file we just created or the user named; a concurrent truncation could
    // raise SIGBUS, as for any ELF reader.
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

/// Options that set the interpreter (executables) and the run path. `rpath` chooses `DT_RPATH` (which the needs of
/// the libraries an object loads inherit) over `DT_RUNPATH` (which covers only the object's own needs).
pub fn patch_options(interpreter: Option<&Path>, run_path: &[String], rpath: bool) -> patchelf_rs::Options {
    patchelf_rs::Options {
        set_interpreter: interpreter.map(|p| p.as_os_str().as_encoded_bytes().to_vec()),
        rpath: Some(patchelf_rs::RpathOp::Set(run_path.join(":").into_bytes())),
        force_rpath: rpath,
        clobber_old_sections: true,
        ..Default::default()
    }
}

/// `to` relative to the directory `from` (both absolute, normalised), as `$ORIGIN/…` would name it.
fn origin_relative(from: &Path, to: &Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["$ORIGIN".into()];
    parts.extend(std::iter::repeat_n("..".to_owned(), f.len() - common));
    parts.extend(t[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
}

/// Mirrors directory `src` into `dst`: files in `copy` (relative paths) are copied, directories leading to them are
/// recreated, every other entry becomes an absolute symlink to the original. An entry in `copy`, or a directory
/// leading to one, that is a symlink in `src` is copied (or recreated) from what it names: the copies are patched
/// in place, and a symlink left in the mirror would have the patch written into the user's own file
/// (`usr/bin/plink1.9 -> ../lib/debian-med/bin/plink1.9`).
fn mirror(src: &Path, dst: &Path, copy: &BTreeSet<PathBuf>) -> Result<()> {
    fs::create_dir_all(dst).with_context(|| format!("cannot create {}", dst.display()))?;
    let mut entries: Vec<_> =
        fs::read_dir(src).with_context(|| format!("cannot list {}", src.display()))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = PathBuf::from(e.file_name());
        let (from, to) = (e.path(), dst.join(&name));
        // What the entry is once its symlinks are followed (a dangling one stays a symlink in the mirror).
        let kind = match fs::metadata(&from) {
            Ok(m) => m.file_type(),
            Err(_) => e.file_type()?,
        };
        if copy.contains(&name) && kind.is_file() {
            fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
            let mode = fs::metadata(&to)?.mode() | 0o200;
            fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            continue;
        }
        let below: BTreeSet<PathBuf> = copy
            .iter()
            .filter_map(|c| c.strip_prefix(&name).ok().filter(|r| !r.as_os_str().is_empty()))
            .map(Path::to_path_buf)
            .collect();
        if !below.is_empty() && kind.is_dir() {
            mirror(&from, &to, &below)?;
        } else {
            std::os::unix::fs::symlink(&from, &to)
                .with_context(|| format!("cannot create {}", to.display()))?;
        }
    }
    Ok(())
}

/// Checks that `dest` is a regular file of the mirror `out` itself, not reached through a symlink: the patch strategy
/// must never write to the program's own files.
fn ensure_own_copy(dest: &Path, out: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dest).with_context(|| format!("cannot inspect {}", dest.display()))?;
    let real = fs::canonicalize(dest).with_context(|| format!("cannot resolve {}", dest.display()))?;
    let out = fs::canonicalize(out).with_context(|| format!("cannot resolve {}", out.display()))?;
    if !meta.is_file() || !real.starts_with(&out) {
        bail!(
            "{} is not a copy of its own (it leads to {}); refusing to write to it",
            dest.display(),
            real.display()
        );
    }
    Ok(())
}

/// Whether a closure library needs a patched copy whose run path holds the closure's directories: it names FHS
/// directories, or it has a `DT_RUNPATH` (which hides the executable's `DT_RPATH` from the library's own needs)
/// through which some of its needs cannot be found.
fn needs_closure_run_path(info: &DynamicInfo) -> bool {
    if info.own_run_path().iter().any(|e| e.starts_with('/')) {
        return true;
    }
    if info.runpath.is_empty() {
        return false;
    }
    // Only `$ORIGIN`-relative entries are left: they point inside the library's own package.
    let dirs = info.search_dirs();
    !info.needed.iter().all(|n| dirs.iter().any(|d| d.join(n).exists()))
}

/// Prepares the patched copy: returns the executable to run, the objects patched and the store path.
fn prepare_patch(
    store: &Store,
    analysis: &Analysis,
    closure: &Closure,
    refs: &[StorePath],
) -> Result<(PathBuf, Vec<PathBuf>, StorePath)> {
    let bundle = &analysis.bundle;
    let class = analysis.class();
    let root = bundle.root.clone();
    let exe = &bundle.program;
    let inside = |p: &Path| p.starts_with(&root) && p != root;
    // Objects of the application that need something from outside it, plugins of left-out groups excepted.
    let left: BTreeSet<&str> = closure.left_out.iter().map(|l| l.label.as_str()).collect();
    let mut targets: Vec<&DynamicInfo> = vec![exe];
    targets.extend(bundle.objects_with_outside_needs().filter(|o| o.path != exe.path && inside(&o.path)));
    targets.extend(
        bundle
            .extras
            .iter()
            .filter(|e| !e.external.is_empty() && inside(&e.object.path))
            .filter(|e| !left.contains(e.object.path.display().to_string().as_str()))
            .map(|e| &e.object),
    );
    if !inside(&exe.path) {
        bail!(
            "cannot patch {}: it is not inside its application directory {}",
            exe.path.display(),
            root.display()
        );
    }
    // Closure libraries whose own run path cannot find their needs get copies with run paths into the store: a
    // DT_RUNPATH shuts out the executable's DT_RPATH for the library's own needs, so libLLVM
    // (`DT_RUNPATH=$ORIGIN/../lib`, needing libedit from another package) fails to load under Mesa's driver, and
    // FHS directories named absolutely (libpulse's `/usr/lib/…/pulseaudio`) are empty on the target host.
    let mut fhs_libs: Vec<(String, DynamicInfo)> = Vec::new();
    for (_, soname, file) in closure.libraries() {
        let Ok(Some(info)) = DynamicInfo::read(file) else { continue };
        if needs_closure_run_path(&info) {
            fhs_libs.push((soname.to_owned(), info));
        }
    }
    let tmp = tempfile::Builder::new().prefix(".fhskit-patch-").tempdir_in(store.state_dir())?;
    let out = tmp.path().join("out");
    let copy: BTreeSet<PathBuf> =
        targets.iter().filter_map(|t| t.path.strip_prefix(&root).ok().map(Path::to_path_buf)).collect();
    mirror(&root, &out, &copy)?;
    let libs_dir = out.join(".fhskit-libs");
    let closure_dirs: Vec<String> = closure.lib_dirs(class).iter().map(|d| d.display().to_string()).collect();
    let in_out = |p: &Path| out.join(p.strip_prefix(&root).unwrap_or(p));
    let mut patched = Vec::new();
    for t in &targets {
        let dest = in_out(&t.path);
        let dest_dir = dest.parent().unwrap_or(&out).to_path_buf();
        let mut run_path: Vec<String> = t.own_run_path().to_vec();
        if t.path == exe.path {
            // The executable keeps its bundle: directories inside the application as $ORIGIN-relative paths (the
            // mirror has them at the same places), others absolutely.
            run_path.retain(|e| e.contains('$'));
            for d in &bundle.dirs {
                let entry = if d.starts_with(&root) {
                    origin_relative(&dest_dir, &in_out(d))
                } else {
                    d.display().to_string()
                };
                if !run_path.contains(&entry) {
                    run_path.push(entry);
                }
            }
        }
        if !fhs_libs.is_empty() {
            run_path.push(origin_relative(&dest_dir, &libs_dir));
        }
        run_path.extend(closure_dirs.iter().cloned());
        let interp = match &t.interpreter {
            Some(_) => Some(loader(analysis, closure)?),
            None => None,
        };
        let keep_runpath = !t.runpath.is_empty() && t.path != exe.path;
        ensure_own_copy(&dest, &out)
            .with_context(|| format!("cannot patch a copy of {}", t.path.display()))?;
        apply_patchelf(&dest, &patch_options(interp.as_deref(), &run_path, !keep_runpath))
            .with_context(|| format!("cannot patch a copy of {}", t.path.display()))?;
        patched.push(t.path.clone());
    }
    if !fhs_libs.is_empty() {
        fs::create_dir_all(&libs_dir)?;
        for (soname, info) in &fhs_libs {
            let dest = libs_dir.join(soname);
            fs::copy(&info.path, &dest).with_context(|| format!("cannot copy {}", info.path.display()))?;
            fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            let pkg = closure.packages.iter().find(|p| info.path.starts_with(&p.dir));
            let mut run_path: Vec<String> = info
                .own_run_path()
                .iter()
                .map(|e| match (e.starts_with('/'), pkg) {
                    (true, Some(p)) => p.dir.join(e.trim_start_matches('/')).display().to_string(),
                    _ => patchelf_rs::dynamic::expand(e, &info.path, info.class, info.machine)
                        .display()
                        .to_string(),
                })
                .collect();
            // The other copies first: a closure library this one needs may have a copy of its own.
            run_path.push("$ORIGIN".into());
            run_path.extend(closure_dirs.iter().cloned());
            apply_patchelf(&dest, &patch_options(None, &run_path, info.runpath.is_empty()))?;
            patched.push(info.path.clone());
        }
    }
    let name = format!("{}-patched", sanitize(&exe.path));
    let sp = store.add_tree(&name, &out, refs)?;
    store.add_temp_root(&sp)?;
    let exec = store.physical_path(&sp).join(exe.path.strip_prefix(&root).unwrap_or(&exe.path));
    Ok((exec, patched, sp))
}

/// Prepares the plan for `strategy` (not `auto`).
pub fn prepare(
    store: &Store,
    strategy: Strategy,
    reason: String,
    analysis: &Analysis,
    closure: &Closure,
) -> Result<(Plan, Vec<StorePath>)> {
    let mut refs = crate::realise::store_paths(store, closure)?;
    let program = analysis.target.clone();
    let class = analysis.class();
    let machine = analysis.machine();
    let mut plan = Plan {
        strategy,
        reason,
        program: program.clone(),
        elf: analysis.program().path.clone(),
        class: class.bits(),
        machine,
        exec: program.clone(),
        env: Vec::new(),
        shim: None,
        interpreter: None,
        loader: None,
        library_path: Vec::new(),
        layers: None,
        env_dir: None,
        binds: Vec::new(),
        packages: PlanPackage::of(closure),
        bundled: analysis.bundle.provided.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        patched: Vec::new(),
        left_out: closure.left_out.iter().map(|l| format!("{} ({})", l.label, l.missing.need)).collect(),
    };
    let launcher_refusal = |what: &str| {
        anyhow!(
            "{} is a launcher script: {what}; use --strategy fhs (or auto), which runs the script in an FHS env",
            program.display()
        )
    };
    match strategy {
        Strategy::Auto => bail!("auto must be resolved to a strategy first"),
        Strategy::Patch => {
            if !analysis.launchers.is_empty() {
                return Err(launcher_refusal("a patched copy of the program it starts is not what it runs"));
            }
            let (exec, patched, sp) = prepare_patch(store, analysis, closure, &refs)?;
            plan.exec = exec;
            plan.patched = patched;
            plan.env = graphics_env(closure, class, machine);
            refs.push(sp);
        }
        Strategy::Shim => {
            if !analysis.launchers.is_empty() {
                return Err(launcher_refusal("the shim starts the ELF file itself, not the script"));
            }
            let interp = analysis.program().interpreter.clone().ok_or_else(|| anyhow!("no interpreter"))?;
            fhsenv::interp::provision(Path::new(&interp)).with_context(|| {
                "the shim strategy cannot make its loader appear at the program's interpreter path here; use \
                 --strategy patch or fhs"
            })?;
            let (system, shim, sp) = shim_in_store(store, class, machine)?;
            let loader = loader(analysis, closure)?;
            let path = library_path(analysis, closure);
            let joined = std::env::join_paths(&path)?.to_string_lossy().into_owned();
            plan.env.push((system.loader_var.into(), loader.display().to_string()));
            plan.env.push((system.library_path_var.into(), joined));
            plan.env.extend(graphics_env(closure, class, machine));
            plan.exec = analysis.program().path.clone();
            plan.shim = Some(shim);
            plan.interpreter = Some(PathBuf::from(interp));
            plan.loader = Some(loader);
            plan.library_path = path;
            plan.layers = Some(store.state_dir().join("ld-shim-layers"));
            refs.push(sp);
        }
        Strategy::Fhs => {
            let mut extra = Vec::new();
            if let Some(root) = &analysis.package_root {
                extra.push(root.clone());
            }
            let (env, sp) = build_env(store, &sanitize(&program), closure, &extra, &[])?;
            plan.env_dir = Some(env);
            plan.binds = [
                Some(patchelf_rs::dynamic::app_root(&analysis.program().path)),
                analysis.package_root.clone(),
            ]
            .into_iter()
            .flatten()
            .filter(|d| d != Path::new("/") && !d.starts_with("/usr"))
            .collect();
            plan.library_path = analysis.bundle.dirs.clone();
            refs.push(sp);
        }
    }
    Ok((plan, refs))
}

/// A package tree of the links an installed system would have but no package ships (the alternatives in use),
/// put in the store; `None` when there are none.
fn links_package(store: &Store, closure: &Closure) -> Result<Option<(PathBuf, StorePath)>> {
    let links = closure.links();
    if links.is_empty() {
        return Ok(None);
    }
    let tmp = tempfile::Builder::new().prefix(".fhskit-links-").tempdir_in(store.state_dir())?;
    let root = tmp.path().join("links");
    for (rel, target) in &links {
        let link = root.join(rel);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
    }
    let refs = crate::realise::store_paths(store, closure)?;
    let sp = store.add_tree("fhskit-alternatives", &root, &refs)?;
    store.add_temp_root(&sp)?;
    Ok(Some((store.physical_path(&sp), sp)))
}

/// Builds an FHS env of the closure's packages (after `first`, package trees that win over them) and puts it in
/// the store.
pub fn build_env(
    store: &Store,
    name: &str,
    closure: &Closure,
    first: &[PathBuf],
    extra_env: &[(String, String)],
) -> Result<(PathBuf, StorePath)> {
    let mut spec = fhsenv::EnvSpec { name: format!("{name}-fhs"), ..Default::default() };
    spec.packages.extend(first.iter().cloned());
    let mut refs = crate::realise::store_paths(store, closure)?;
    if let Some((dir, sp)) = links_package(store, closure)? {
        spec.packages.push(dir);
        refs.push(sp);
    }
    for p in &closure.packages {
        if p.key.ends_with(":i386") {
            spec.multi_packages.push(p.dir.clone())
        } else {
            spec.packages.push(p.dir.clone())
        }
    }
    spec.store_dir = Some(store.physical_store_dir().to_path_buf());
    spec.run = vec!["sh".into()];
    for (k, v) in extra_env {
        spec.env.insert(k.clone(), v.clone());
    }
    let tmp = tempfile::Builder::new().prefix(".fhskit-env-").tempdir_in(store.state_dir())?;
    let out = tmp.path().join("env");
    fhsenv::build(&spec, &out).with_context(|| format!("cannot build the FHS env for {name}"))?;
    let sp = store.add_tree(&format!("{name}-fhsenv"), &out, &refs)?;
    store.add_temp_root(&sp)?;
    Ok((store.physical_path(&sp), sp))
}

/// Re-executes this fhskit with the same arguments (minus `--refresh`, since the plan is now stored): namespaces
/// can only be entered by a single-threaded process, and preparing started threads.
pub fn reexec_prepared() -> anyhow::Error {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--refresh") {
        args.remove(i);
    }
    let err = std::process::Command::new("/proc/self/exe").args(args).exec();
    anyhow!("cannot re-execute fhskit to start the program: {err}")
}

fn cstring(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| anyhow!("an argument or variable contains a NUL byte"))
}

/// Starts the program as the plan says; returns its exit status (exec replaces this process for patch and shim).
pub fn execute(plan: &Plan, args: &[OsString]) -> Result<ExitCode> {
    let unset: Vec<&(String, String)> =
        plan.env.iter().filter(|(k, _)| k.starts_with("NIX_LD") || std::env::var_os(k).is_none()).collect();
    match plan.strategy {
        Strategy::Patch => {
            let mut cmd = std::process::Command::new(&plan.exec);
            cmd.args(args);
            for (k, v) in unset {
                cmd.env(k, v);
            }
            let err = cmd.exec();
            Err(anyhow!("cannot execute {}: {err}", plan.exec.display()))
        }
        Strategy::Shim => {
            if !fhsenv::userns::single_threaded() {
                return Err(reexec_prepared());
            }
            let shim = plan.shim.as_ref().ok_or_else(|| anyhow!("plan without a shim"))?;
            let interp = plan.interpreter.as_ref().ok_or_else(|| anyhow!("plan without an interpreter"))?;
            let layers = plan.layers.clone().unwrap_or_else(std::env::temp_dir);
            let mut argv = vec![cstring(plan.exec.as_os_str().as_bytes())?];
            for a in args {
                argv.push(cstring(a.as_bytes())?);
            }
            let mut envp: Vec<CString> = std::env::vars_os()
                .filter(|(k, _)| !unset.iter().any(|(n, _)| k.as_bytes() == n.as_bytes()))
                .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
                .collect::<Result<_>>()?;
            for (k, v) in unset {
                envp.push(cstring(format!("{k}={v}").as_bytes())?);
            }
            let err = match fhsenv::interp::exec(interp, shim, &layers, &argv, &envp) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            Err(anyhow::Error::new(err)
                .context(format!("cannot start {} through the loader shim", plan.exec.display())))
        }
        Strategy::Fhs => {
            let env_dir = plan.env_dir.as_ref().ok_or_else(|| anyhow!("plan without an env"))?;
            let mut command = vec![plan.exec.clone().into_os_string()];
            command.extend(args.iter().cloned());
            let bind_try = plan.binds.iter().map(|d| d.display().to_string()).collect();
            let mut setenv: Vec<String> = unset.iter().map(|(k, v)| format!("{k}={v}")).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_relative_paths() {
        assert_eq!(origin_relative(Path::new("/s/app/bin"), Path::new("/s/app/lib")), "$ORIGIN/../lib");
        assert_eq!(
            origin_relative(Path::new("/s/app"), Path::new("/s/app/.fhskit-libs")),
            "$ORIGIN/.fhskit-libs"
        );
        assert_eq!(origin_relative(Path::new("/s/app"), Path::new("/s/app")), "$ORIGIN");
    }

    #[test]
    fn mirror_copies_targets_and_links_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("app");
        fs::create_dir_all(src.join("lib/sub")).unwrap();
        fs::create_dir_all(src.join("share")).unwrap();
        fs::write(src.join("app"), b"exe").unwrap();
        fs::write(src.join("data.pak"), b"d").unwrap();
        fs::write(src.join("lib/libx.so"), b"x").unwrap();
        fs::write(src.join("lib/liby.so"), b"y").unwrap();
        let dst = d.path().join("out");
        let copy: BTreeSet<PathBuf> = ["app", "lib/libx.so"].iter().map(PathBuf::from).collect();
        mirror(&src, &dst, &copy).unwrap();
        assert!(!fs::symlink_metadata(dst.join("app")).unwrap().is_symlink());
        assert_eq!(fs::read_link(dst.join("data.pak")).unwrap(), src.join("data.pak"));
        assert_eq!(fs::read_link(dst.join("share")).unwrap(), src.join("share"));
        assert!(fs::symlink_metadata(dst.join("lib")).unwrap().is_dir());
        assert!(!fs::symlink_metadata(dst.join("lib/libx.so")).unwrap().is_symlink());
        assert_eq!(fs::read_link(dst.join("lib/liby.so")).unwrap(), src.join("lib/liby.so"));
        assert_eq!(fs::read_link(dst.join("lib/sub")).unwrap(), src.join("lib/sub"));
    }

    #[test]
    fn mirror_copies_what_symlinked_targets_name_and_leaves_the_originals_alone() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("app");
        fs::create_dir_all(src.join("usr/lib/real/bin")).unwrap();
        fs::create_dir_all(src.join("usr/bin")).unwrap();
        fs::write(src.join("usr/lib/real/bin/prog"), b"exe").unwrap();
        fs::write(src.join("usr/lib/real/bin/other"), b"o").unwrap();
        std::os::unix::fs::symlink("../lib/real/bin/prog", src.join("usr/bin/prog")).unwrap();
        // A directory symlink on the way to a target, and a dangling link beside it.
        std::os::unix::fs::symlink("lib/real/bin", src.join("usr/rbin")).unwrap();
        std::os::unix::fs::symlink("nowhere", src.join("usr/dangling")).unwrap();
        let dst = d.path().join("out");
        let copy: BTreeSet<PathBuf> = ["usr/bin/prog", "usr/rbin/prog"].iter().map(PathBuf::from).collect();
        mirror(&src, &dst, &copy).unwrap();
        for target in ["usr/bin/prog", "usr/rbin/prog"] {
            let t = dst.join(target);
            assert!(fs::symlink_metadata(&t).unwrap().is_file(), "{target}");
            ensure_own_copy(&t, &dst).unwrap();
            fs::write(&t, b"patched").unwrap();
        }
        assert!(fs::symlink_metadata(dst.join("usr/rbin")).unwrap().is_dir());
        assert_eq!(fs::read_link(dst.join("usr/rbin/other")).unwrap(), src.join("usr/rbin/other"));
        assert_eq!(fs::read_link(dst.join("usr/dangling")).unwrap(), src.join("usr/dangling"));
        assert_eq!(fs::read(src.join("usr/lib/real/bin/prog")).unwrap(), b"exe");
        // A link in the mirror is refused before anything is written through it.
        let err = ensure_own_copy(&dst.join("usr/rbin/other"), &dst).unwrap_err().to_string();
        assert!(err.contains("refusing to write"), "{err}");
    }
}
