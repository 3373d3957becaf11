//! `fhskit shim install|status|uninstall`: the NixOS `programs.nix-ld` equivalent for any host. Installs the
//! ld-shim executables embedded in this binary (`ld_shim::embedded`) at the FHS loader paths under a root, writes
//! the shim's config file (format: `ld_shim::config`) and keeps the loader and library set it names in a state
//! directory, refuses to replace a real loader unless forced (keeping a backup that `uninstall` puts back).
//!
//! Layout under the root, per system (`x86_64-linux`, `i686-linux`):
//! - the shim at the system's interpreter path (`/lib64/ld-linux-x86-64.so.2`, `/lib/ld-linux.so.2`);
//! - `/etc/fhskit/ld-shim-<system>.conf`: `loader=` and `library-path=`, paths inside the root;
//! - `/var/lib/fhskit/ld-shim/<system>/`: `ld.so` (a symlink to the real loader), `lib/` (the library set) and
//!   `backup/` (what the shim replaced).
//!
//! The library set is a directory of symlinks to every file of the `--lib-dir` directories; with `--package` it is
//! built in the store instead: the declared Debian packages and the packages their libraries need are realised
//! into the store (from the host's dpkg database, offline, or the configured apt repositories, as `fhskit run`
//! does), the symlink farm over their library directories becomes a store path referring to them, `lib` points at
//! it and `lib-root` keeps it alive as a GC root until `uninstall`. The set's own loader (libc6's) becomes the
//! configured loader unless `--loader` names one, so the loader and the C library always match.
//!
//! Every file is written beside its target and renamed into place; paths are resolved inside the root as a chroot
//! would, so an absolute symlink in the root (`lib64 -> /usr/lib64`) never leads outside it. `--loader` and
//! `--lib-dir` name paths as programs will see them, inside the root; under a root other than `/` the links to
//! them are relative, so the tree works both from the host (programs naming `<root>/lib64/…`) and as a container's
//! or image's `/`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ld_shim::system::{self, System};
use store::{Store, StoreConfig, StorePath};

use patchelf_rs::dynamic::Class;
use pkgs::closure::{Closure, Need, Needs};

use crate::realise::{self, SourceOptions};

#[derive(Debug, Subcommand)]
pub enum ShimCommand {
    /// Install the loader shim at the FHS loader paths, with a config naming the real loader and a library set.
    Install(Box<InstallArgs>),
    /// Show what is installed under the root.
    Status(StatusArgs),
    /// Remove the shim, its config and state, and put back any loader it replaced.
    Uninstall(RootArgs),
}

#[derive(Debug, Args)]
pub struct RootArgs {
    /// The root directory to work under (an image or container tree; `/` for this system).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Only these systems (`x86_64-linux`, `i686-linux`, `aarch64-linux`); default: the x86 shims built into
    /// fhskit (aarch64 only when named, since only qemu-user setups need it on an x86-64 host).
    #[arg(long = "system", value_name = "SYSTEM")]
    pub systems: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub root: RootArgs,
    /// The real ld.so for programs of this host's system (x86-64), as programs will see it: a path inside the root
    /// (so an installed tree works as a container's `/`). Default: the loader of the `--package` set, else the loader
    /// `--force` replaced.
    #[arg(long, value_name = "PATH")]
    pub loader: Option<PathBuf>,
    /// A directory, inside the root, whose libraries those programs get by default (repeatable; earlier ones win on
    /// name clashes).
    #[arg(long = "lib-dir", value_name = "DIR")]
    pub lib_dirs: Vec<PathBuf>,
    /// The real ld.so for 32-bit x86 programs (inside the root).
    #[arg(long, value_name = "PATH")]
    pub i686_loader: Option<PathBuf>,
    /// A directory of 32-bit x86 libraries, inside the root (repeatable).
    #[arg(long = "i686-lib-dir", value_name = "DIR")]
    pub i686_lib_dirs: Vec<PathBuf>,
    /// The real ld.so for aarch64 programs, inside the root (run through qemu-user and binfmt_misc; `--system
    /// aarch64-linux`).
    #[arg(long, value_name = "PATH")]
    pub aarch64_loader: Option<PathBuf>,
    /// A directory of aarch64 libraries, inside the root (repeatable).
    #[arg(long = "aarch64-lib-dir", value_name = "DIR")]
    pub aarch64_lib_dirs: Vec<PathBuf>,
    /// Replace a real loader found at a loader path (it is backed up and restored by `uninstall`).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub packages: PackageArgs,
}

/// The library set as declared packages, realised into the store.
#[derive(Debug, Args)]
pub struct PackageArgs {
    /// A Debian package whose libraries, with those of the packages they need, programs get by default; realised
    /// into the store (repeatable; `NAME` for the x86-64 set, `NAME:i386` for the 32-bit one). When the set holds
    /// the C library, its loader becomes the configured loader unless `--loader` is given.
    #[arg(long = "package", value_name = "NAME[:ARCH]")]
    pub names: Vec<String>,
    /// The steam-run library set as the default libraries (64- and 32-bit: the C/C++ runtime, X11, Wayland, GL,
    /// Vulkan, audio, GTK, SDL2, TLS, …), resolved and realised like `--package` (nixpkgs' steam-run multiPkgs).
    #[arg(long)]
    pub steam_libraries: bool,
    /// Take packages only from the host's dpkg database, never from apt repositories.
    #[arg(long)]
    pub offline: bool,
    /// Never take packages from the host's dpkg database (only from the repositories).
    #[arg(long)]
    pub no_host: bool,
    /// A repository in apt's one-line form (repeatable; default: the configured ones, else the host's apt sources).
    #[arg(long = "repo", value_name = "SPEC")]
    pub repos: Vec<String>,
    /// Configuration file (default: $XDG_CONFIG_HOME/fhskit/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Root directory whose var/lib/dpkg and etc/apt describe the host (default: /).
    #[arg(long, value_name = "DIR", env = "FHSKIT_HOST_ROOT")]
    pub host_root: Option<PathBuf>,
    /// The store the packages go to (default: FHSKIT_STORE, else the per-user store; /var/lib/fhskit for root).
    #[arg(long, value_name = "DIR")]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub root: RootArgs,
    #[arg(long, help = crate::output::JSON_HELP)]
    pub json: bool,
}

pub fn run(command: ShimCommand) -> Result<ExitCode> {
    match command {
        ShimCommand::Install(args) => install(&args),
        ShimCommand::Status(args) => status(&args),
        ShimCommand::Uninstall(args) => uninstall(&args),
    }
}

/// Where one system's files live under a root (host paths).
struct Paths {
    system: System,
    /// The interpreter path resolved inside the root: where the shim is written.
    interpreter: PathBuf,
    /// The interpreter path as messages show it (see [`shown_path`]).
    shown: PathBuf,
    config: PathBuf,
    state: PathBuf,
}

/// The state directory of `system`, inside the root.
fn state_dir(system: &System) -> String {
    format!("/var/lib/fhskit/ld-shim/{}", system.nix)
}

impl Paths {
    fn new(root: &Path, system: System) -> Result<Self> {
        let interpreter = resolve_in_root(root, Path::new(system.interpreter))?;
        Ok(Self {
            system,
            shown: shown_path(root, Path::new(system.interpreter), &interpreter),
            interpreter,
            config: resolve_in_root(root, Path::new(system.config))?,
            state: resolve_in_root(root, Path::new(&state_dir(&system)))?,
        })
    }

    fn backup(&self) -> PathBuf {
        let name = Path::new(self.system.interpreter).file_name().expect("interpreter paths name a file");
        self.state.join("backup").join(name)
    }
}

/// The systems to work on: those named, or every embedded one native to this host (x86-64 with its 32-bit
/// companion).
/// A system to work on and its embedded shim (absent when this fhskit was built without it).
type Selected = (System, Option<&'static [u8]>);

fn systems(args: &RootArgs) -> Result<Vec<Selected>> {
    let built: Vec<(System, &'static [u8])> = ld_shim::embedded::builds().collect();
    if args.systems.is_empty() {
        return Ok(built
            .into_iter()
            .filter(|(system, _)| *system == system::NATIVE || *system == system::I686)
            .map(|(system, bytes)| (system, Some(bytes)))
            .collect());
    }
    args.systems
        .iter()
        .map(|name| {
            let system =
                system::ALL.into_iter().find(|system| system.nix == name.as_str()).with_context(|| {
                    format!("unknown system {name:?} (known: x86_64-linux, i686-linux, aarch64-linux)")
                })?;
            let bytes = built.iter().find(|(built, _)| *built == system).map(|(_, bytes)| *bytes);
            Ok((system, bytes))
        })
        .collect()
}

/// The systems `status` and `uninstall` look at: those named, else every known one (an aarch64 shim may have been
/// installed by naming it).
fn all_systems(args: &RootArgs) -> Result<Vec<Selected>> {
    if !args.systems.is_empty() {
        return systems(args);
    }
    let built: Vec<(System, &'static [u8])> = ld_shim::embedded::builds().collect();
    Ok(system::ALL
        .into_iter()
        .map(|system| (system, built.iter().find(|(b, _)| *b == system).map(|(_, bytes)| *bytes)))
        .collect())
}

/// The host path of `inner` to show for `resolved` (its resolution inside `root`): the plain `root` + `inner` when
/// that reaches the same directory on the host (e.g. `/lib64/ld-linux-x86-64.so.2` where `/lib64 -> usr/lib64`),
/// else the resolved path (an absolute symlink inside the root leads elsewhere from the host).
fn shown_path(root: &Path, inner: &Path, resolved: &Path) -> PathBuf {
    let plain = root.join(inner.strip_prefix("/").unwrap_or(inner));
    if plain == resolved {
        return plain;
    }
    let same_dir = match (plain.parent(), resolved.parent()) {
        (Some(a), Some(b)) => matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b),
        _ => false,
    };
    if same_dir { plain } else { resolved.to_owned() }
}

fn check_root(root: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(root).with_context(|| format!("cannot use root {}", root.display()))?;
    if !meta.is_dir() {
        bail!("cannot use root {}: not a directory", root.display());
    }
    fs::canonicalize(root).with_context(|| format!("cannot resolve root {}", root.display()))
}

/// Everything one system's install writes, decided before anything is written.
struct Plan {
    paths: Paths,
    shim: &'static [u8],
    loader: Option<ConfiguredLoader>,
    /// The `--lib-dir` directories as host paths (resolved inside the root).
    lib_dirs: Vec<PathBuf>,
    /// The library set built in the store from `--package`, when the packages hold libraries of this system.
    set: Option<StoreSet>,
    existing: Existing,
}

/// The loader the config names, through the `ld.so` link of the state directory.
struct ConfiguredLoader {
    /// What the link points to: relative inside a root other than `/` (so it works from the host, through the
    /// root's directory, and with the root as a container's `/`), else absolute.
    target: PathBuf,
    /// The path to show: as the user gave it, or the package's loader in the store.
    shown: PathBuf,
}

/// A library set in the store.
struct StoreSet {
    path: StorePath,
    /// Where its files are on this host.
    physical: PathBuf,
    links: usize,
}

fn install(args: &InstallArgs) -> Result<ExitCode> {
    let root = check_root(&args.root.root)?;
    let mut plans = Vec::new();
    // Check everything before writing anything.
    for (system, bytes) in systems(&args.root)? {
        let Some(bytes) = bytes else {
            bail!(
                "cannot install the {} shim: this fhskit was built without it (install the {} Rust target and rebuild)",
                system.nix,
                system.rust_target
            );
        };
        let (loader, lib_dirs) = if system == system::I686 {
            (args.i686_loader.as_deref(), &args.i686_lib_dirs)
        } else if system == system::AARCH64 && system::NATIVE != system::AARCH64 {
            (args.aarch64_loader.as_deref(), &args.aarch64_lib_dirs)
        } else {
            (args.loader.as_deref(), &args.lib_dirs)
        };
        let paths = Paths::new(&root, system)?;
        let loader = match loader {
            Some(loader) => Some(loader_in_root(&root, loader, &paths)?),
            None => None,
        };
        let lib_dirs = lib_dirs.iter().map(|dir| lib_dir_in_root(&root, dir)).collect::<Result<Vec<_>>>()?;
        let existing = Existing::at(&paths.interpreter)?;
        if let Existing::Other = existing
            && !args.force
        {
            bail!(
                "refusing to replace {}: it is a real loader, not ld-shim (pass --force to replace it; a backup is kept \
                 and `fhskit shim uninstall` restores it)",
                paths.shown.display()
            );
        }
        plans.push(Plan { paths, shim: bytes, loader, lib_dirs, set: None, existing });
    }
    let declared = !args.packages.names.is_empty() || args.packages.steam_libraries;
    let store = if declared { Some(open_store(&args.packages)?) } else { None };
    if let Some(store) = &store {
        // The store is written before the root: a failed realisation leaves the root as it was.
        let closure = realise_packages(store, &args.packages)?;
        let mut used = false;
        for plan in &mut plans {
            let Some(class) = package_class(&plan.paths.system) else { continue };
            let loader_name = Path::new(plan.paths.system.interpreter).file_name().unwrap().to_string_lossy();
            let package_dirs = closure.lib_dirs(class);
            if package_dirs.is_empty() {
                continue;
            }
            used = true;
            if plan.loader.is_none()
                && let Some(loader) = closure.file(class, &loader_name)
            {
                check_loader(loader, loader, &plan.paths.system)?;
                plan.loader = Some(ConfiguredLoader { target: loader.to_owned(), shown: loader.to_owned() });
            }
            plan.set = Some(build_store_set(store, &closure, class, &plan.lib_dirs, &plan.paths.system)?);
        }
        if !used {
            let systems: Vec<&str> = plans.iter().map(|plan| plan.paths.system.nix).collect();
            bail!(
                "cannot use packages {}: they hold no libraries for {} (x86-64 packages serve x86_64-linux, \
                 NAME:i386 ones i686-linux)",
                args.packages.names.join(", "),
                systems.join(", ")
            );
        }
    }
    for plan in plans {
        install_one(&plan, store.as_ref(), &root)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The ELF class whose libraries of the package closure serve `system` (the closure is realised for x86-64 and
/// its 32-bit companion).
fn package_class(system: &System) -> Option<Class> {
    if *system == system::X86_64 {
        Some(Class::Elf64)
    } else if *system == system::I686 {
        Some(Class::Elf32)
    } else {
        None
    }
}

fn open_store(args: &PackageArgs) -> Result<Store> {
    let config = StoreConfig::from_arg(args.store.as_deref())?;
    let dir = config.physical_store_dir();
    Store::open(config).with_context(|| format!("cannot open the store at {}", dir.display()))
}

/// Realises the declared packages (and with `--steam-libraries` the steam-run library set) and the packages their
/// libraries need into the store. A declared package nothing provides is an error; a library one of them needs is
/// only warned about (programs then look for it in the loader's default directories).
fn realise_packages(store: &Store, args: &PackageArgs) -> Result<Closure> {
    let mut needs = Needs { machine: patchelf_rs::raw::EM_X86_64, ..Default::default() };
    for name in &args.names {
        needs.required.insert(Need::Package(name.clone()));
    }
    if args.steam_libraries {
        let set = super::steam_run::set_needs(true);
        needs.required.extend(set.required);
        needs.optional.extend(set.optional);
    }
    let options = SourceOptions {
        host: !args.no_host,
        host_root: args.host_root.clone().unwrap_or_else(|| PathBuf::from("/")),
        repo: !args.offline,
        repos: args.repos.clone(),
        config: args.config.clone(),
        jobs: 4,
    };
    let what = if args.steam_libraries && args.names.is_empty() {
        "the steam-run library set".to_owned()
    } else {
        format!("packages {}", args.names.join(", "))
    };
    let closure =
        realise::resolve(store, &needs, &options).with_context(|| format!("cannot realise {what}"))?;
    if args.steam_libraries {
        // Like steam-run: the set is broad on purpose, so what no source has is said, not fatal.
        let total = needs.optional.len();
        eprintln!(
            "fhskit: the steam-run library set: {} of {total} default libraries and tools available, {} packages",
            total - closure.left_out.len(),
            closure.packages.len()
        );
    }
    let (packages, libraries): (Vec<_>, Vec<_>) =
        closure.missing.iter().cloned().partition(|m| matches!(m.need, Need::Package(_)));
    if !packages.is_empty() {
        return Err(realise::missing_error(
            &format!("cannot realise {what}"),
            &packages,
            realise::Hints { ignore_missing: false },
        ));
    }
    if !libraries.is_empty() {
        let names: Vec<String> = libraries.iter().map(|m| m.need.to_string()).collect();
        eprintln!(
            "warning: no package provides {} (needed by the declared packages); programs look for them in the \
             loader's default directories",
            names.join(", ")
        );
    }
    Ok(closure)
}

/// Builds the library set of `class` in the store: a directory of symlinks to every entry of `lib_dirs` (first, so
/// that explicit directories win) and to the libraries of the closure's packages, referring to those packages.
fn build_store_set(
    store: &Store,
    closure: &Closure,
    class: Class,
    lib_dirs: &[PathBuf],
    system: &System,
) -> Result<StoreSet> {
    let temp = tempfile::Builder::new()
        .prefix(".fhskit-shim-")
        .tempdir_in(store.state_dir())
        .with_context(|| format!("cannot create a directory in {}", store.state_dir().display()))?;
    let tree = temp.path().join("lib");
    fs::create_dir(&tree).with_context(|| format!("cannot create {}", tree.display()))?;
    let mut links = link_entries(lib_dirs, &tree, None)?;
    for dir in closure.lib_dirs(class) {
        let Some(package) = closure.packages.iter().find(|package| dir.starts_with(&package.dir)) else {
            continue;
        };
        links += link_package_libraries(&package.dir, &dir, &tree)?;
    }
    // Libraries an installed system reaches through alternatives links (libblas.so.3).
    for (rel, target) in closure.links() {
        let Some(name) = rel.file_name() else { continue };
        let link = tree.join(name);
        if fs::symlink_metadata(&link).is_err() && crate::realise::package_of(closure, &target).is_some() {
            symlink(&target, &link).with_context(|| format!("cannot create {}", link.display()))?;
            links += 1;
        }
    }
    let references = realise::store_paths(store, closure)?;
    let name = format!("ld-shim-libraries-{}", system.nix);
    let path = store
        .add_tree(&name, &tree, &references)
        .with_context(|| format!("cannot add the {} library set to the store", system.nix))?;
    // Protects the path from a concurrent collection until the root under the state directory exists.
    store.add_temp_root(&path)?;
    let physical = store.physical_path(&path);
    Ok(StoreSet { path, physical, links })
}

/// Links the libraries (`*.so*` names that resolve to a file inside the package) of `dir`, a library directory of
/// the package unpacked at `package`, into `tree`; names already there are kept. Links point at the resolved file:
/// an absolute symlink in a package means a path inside the package, never the host's file of that name.
fn link_package_libraries(package: &Path, dir: &Path, tree: &Path) -> Result<usize> {
    let entries = sorted_entries(dir)?;
    let mut count = 0;
    for entry in entries {
        let name = entry.file_name();
        if !name.to_string_lossy().contains(".so") {
            continue;
        }
        let link = tree.join(&name);
        if fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        let inner = Path::new("/").join(entry.path().strip_prefix(package).unwrap_or(&entry.path()));
        let Some(file) = resolve_file_in(package, &inner) else {
            tracing::debug!(path = ?entry.path(), "not a library file inside its package");
            continue;
        };
        symlink(&file, &link).with_context(|| format!("cannot create {}", link.display()))?;
        count += 1;
    }
    Ok(count)
}

/// Resolves `inner` (an absolute path inside `tree`) to a regular file, following every symlink as a chroot
/// would; `None` when it names no file.
fn resolve_file_in(tree: &Path, inner: &Path) -> Option<PathBuf> {
    resolve_entry_in(tree, inner).filter(|host| fs::metadata(host).is_ok_and(|m| m.is_file()))
}

/// Resolves `inner` (an absolute path inside `tree`) to the host path of what it names, following every symlink
/// (the last component's too) as a chroot would; `None` when nothing is there.
fn resolve_entry_in(tree: &Path, inner: &Path) -> Option<PathBuf> {
    let host = safefs::resolve_in_root(tree, inner, safefs::Follow::All).ok()?;
    fs::symlink_metadata(&host).is_ok().then_some(host)
}

/// What sits at an interpreter path.
enum Existing {
    Absent,
    Shim,
    /// A real loader (or anything else that is not the shim), which only `--force` replaces.
    Other,
}

impl Existing {
    fn at(path: &Path) -> Result<Self> {
        match fs::symlink_metadata(path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::Absent),
            Err(err) => Err(err).with_context(|| format!("cannot inspect {}", path.display())),
            Ok(meta) if meta.file_type().is_symlink() => Ok(Self::Other),
            Ok(_) => {
                let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                Ok(if ld_shim::elf::is_shim(&bytes) { Self::Shim } else { Self::Other })
            }
        }
    }
}

fn install_one(plan: &Plan, store: Option<&Store>, root: &Path) -> Result<()> {
    let Plan { paths, shim, loader, lib_dirs, set, existing } = plan;
    let system = &paths.system;
    create_dirs(&paths.state)?;
    // The loader: as given, else the backup of the loader being replaced now or by an earlier forced install. The
    // backup is linked relatively so that the link works both from the host (programs naming `<root>/lib64/…`)
    // and with the root as `/` (a container or image).
    let backup = paths.backup();
    let had_backup = fs::symlink_metadata(&backup).is_ok();
    let loader_link = paths.state.join("ld.so");
    let loader_target = match loader {
        Some(loader) => Some(loader.target.clone()),
        None if matches!(existing, Existing::Other) || had_backup => {
            Some(Path::new("backup").join(backup.file_name().expect("backup paths name a file")))
        }
        None => None,
    };
    if let Existing::Other = existing
        && !had_backup
    {
        create_dirs(backup.parent().unwrap())?;
        copy_entry(&paths.interpreter, &backup)?;
        println!("backed up {} to {}", paths.shown.display(), backup.display());
    }
    match &loader_target {
        Some(target) => replace_with_symlink(target, &loader_link)?,
        None => {
            remove_if_present(&loader_link)?;
        }
    }
    let lib = paths.state.join("lib");
    let lib_root = paths.state.join("lib-root");
    let lib_count = match set {
        Some(set) => {
            // The GC root is a link of its own: the store's root links name the logical path, which for a
            // chroot-style store is not where the files are on this host.
            let store = store.expect("a store set comes with its store");
            store.add_root(&lib_root, &set.path)?;
            swap_in(&lib, |fresh| {
                symlink(&set.physical, fresh).with_context(|| format!("cannot create {}", fresh.display()))
            })?;
            set.links
        }
        None => {
            remove_if_present(&lib_root)?;
            let mut count = 0;
            swap_in(&lib, |fresh| {
                fs::create_dir(fresh).with_context(|| format!("cannot create {}", fresh.display()))?;
                // Relative links inside a root other than `/`, for the same reason as the loader's.
                let relative = (root != Path::new("/")).then_some(lib.as_path());
                count = link_entries(lib_dirs, fresh, relative)?;
                Ok(())
            })?;
            count
        }
    };

    let state = state_dir(system);
    let mut config = format!(
        "# ld-shim configuration for {}, written by `fhskit shim install`.\n\
         # Paths are inside the root the shim is installed under; NIX_LD* variables take precedence.\n",
        system.nix
    );
    if loader_target.is_some() {
        config.push_str(&format!("{}={state}/ld.so\n", ld_shim::config::LOADER_KEY));
    }
    config.push_str(&format!("{}={state}/lib\n", ld_shim::config::LIBRARY_PATH_KEY));
    create_dirs(paths.config.parent().unwrap())?;
    write_atomic(&paths.config, config.as_bytes(), 0o644)?;

    create_dirs(paths.interpreter.parent().unwrap())?;
    write_atomic(&paths.interpreter, shim, 0o755)?;
    println!("installed the {} shim at {}", system.nix, paths.shown.display());
    match (loader, &loader_target) {
        (Some(loader), _) => println!("  loader: {}", loader.shown.display()),
        (None, Some(target)) => println!("  loader: {}", target.display()),
        (None, None) => println!(
            "  loader: none configured (programs need {} or {}; else the compiled-in default)",
            system.loader_var,
            system::LOADER_VAR,
        ),
    }
    match set {
        Some(set) => println!("  libraries: {lib_count} in {} -> {}", lib.display(), set.physical.display()),
        None => println!("  libraries: {lib_count} in {}", lib.display()),
    }
    println!("  config: {}", paths.config.display());
    Ok(())
}

/// Resolves `loader` (a path inside `root`, as programs will see it) and checks it; returns what the `ld.so` link
/// of the state directory points to.
fn loader_in_root(root: &Path, loader: &Path, paths: &Paths) -> Result<ConfiguredLoader> {
    if !loader.is_absolute() {
        bail!("cannot use loader {}: the path must be absolute", loader.display());
    }
    let shown = || shown_in_root(root, loader);
    let file = resolve_file_in(root, loader).with_context(|| {
        format!("cannot use loader {}: no such file inside the root {}", shown().display(), root.display())
    })?;
    if file == paths.interpreter {
        bail!(
            "cannot use loader {}: the shim is installed there (without --loader, a real loader --force replaces is              kept as a backup and configured)",
            shown().display()
        );
    }
    check_loader(&file, &shown(), &paths.system)?;
    let target = if root == Path::new("/") { loader.to_owned() } else { relative_path(&paths.state, &file) };
    Ok(ConfiguredLoader { target, shown: shown() })
}

/// `inner` (a path inside `root`) as messages show it: itself when the root is `/`, else under the root.
fn shown_in_root(root: &Path, inner: &Path) -> PathBuf {
    if root == Path::new("/") {
        inner.to_owned()
    } else {
        root.join(inner.strip_prefix("/").unwrap_or(inner))
    }
}

/// The relative path that leads from the directory `from` to `to` (both absolute, without symlinks below their
/// common part).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to_parts: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part);
    }
    out
}

/// Checks that `file` (shown as `shown`) is an ELF loader for `system`: not the shim, not a program.
fn check_loader(file: &Path, shown: &Path, system: &System) -> Result<()> {
    let loader = shown;
    let bytes = fs::read(file).with_context(|| format!("cannot use loader {}", loader.display()))?;
    let reason = if bytes.len() < 20 || bytes[..4] != *b"\x7fELF" {
        Some("not an ELF file")
    } else if bytes[4] != system.class {
        Some(if system.class == 2 {
            "a 32-bit file, the system is 64-bit"
        } else {
            "a 64-bit file, the system is 32-bit"
        })
    } else if u16::from_le_bytes([bytes[18], bytes[19]]) != system.machine {
        Some("built for another architecture")
    } else if u16::from_le_bytes([bytes[16], bytes[17]]) != 3 {
        Some("not a dynamic loader (ELF type is not ET_DYN)")
    } else if ld_shim::elf::is_shim(&bytes) {
        Some("it is ld-shim itself, not the real loader")
    } else if ld_shim::elf::has_interpreter(&bytes) {
        Some("it is a program with an interpreter of its own, not a dynamic loader")
    } else {
        None
    };
    match reason {
        Some(reason) => bail!("cannot use loader {} for {}: {reason}", loader.display(), system.nix),
        None => Ok(()),
    }
}

/// Resolves `dir` (a path inside `root`) to the host path of a directory.
fn lib_dir_in_root(root: &Path, dir: &Path) -> Result<PathBuf> {
    if !dir.is_absolute() {
        bail!("cannot use library directory {}: the path must be absolute", dir.display());
    }
    let shown = shown_in_root(root, dir);
    let host = resolve_entry_in(root, dir).with_context(|| {
        format!("cannot use library directory {}: not found inside the root", shown.display())
    })?;
    if !fs::metadata(&host).is_ok_and(|m| m.is_dir()) {
        bail!("cannot use library directory {}: not a directory", shown.display());
    }
    Ok(host)
}

/// The entries of `dir`, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        .with_context(|| format!("cannot read library directory {}", dir.display()))?;
    entries.sort_by_key(|entry| entry.file_name());
    Ok(entries)
}

/// Links every entry of `dirs` into the directory `tree` (earlier directories win on name clashes); returns the
/// number of links. With `relative_from`, the links are relative to that directory (where `tree` will be).
fn link_entries(dirs: &[PathBuf], tree: &Path, relative_from: Option<&Path>) -> Result<usize> {
    let mut count = 0;
    for dir in dirs {
        for entry in sorted_entries(dir)? {
            let link = tree.join(entry.file_name());
            if fs::symlink_metadata(&link).is_ok() {
                tracing::debug!(?link, "library name already taken by an earlier directory");
                continue;
            }
            let target = match relative_from {
                Some(from) => relative_path(from, &entry.path()),
                None => entry.path(),
            };
            symlink(&target, &link).with_context(|| format!("cannot create {}", link.display()))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Replaces `dest` (a directory or a symlink, or nothing) with what `make` creates at a fresh name beside it.
fn swap_in(dest: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dest.parent().unwrap();
    let fresh = parent.join(".lib.fhskit-new");
    let old = parent.join(".lib.fhskit-old");
    for leftover in [&fresh, &old] {
        remove_entry(leftover)?;
    }
    make(&fresh)?;
    if fs::symlink_metadata(dest).is_ok() {
        fs::rename(dest, &old).with_context(|| format!("cannot move {} aside", dest.display()))?;
    }
    fs::rename(&fresh, dest).with_context(|| format!("cannot create {}", dest.display()))?;
    remove_entry(&old)
}

/// Removes a directory tree, a file or a symlink (never what a symlink points at), if present.
fn remove_entry(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) if meta.is_dir() => {
            fs::remove_dir_all(path).with_context(|| format!("cannot remove {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display())),
    }
}

fn uninstall(args: &RootArgs) -> Result<ExitCode> {
    let root = check_root(&args.root)?;
    let mut did_something = false;
    for (system, _) in all_systems(args)? {
        let paths = Paths::new(&root, system)?;
        let backup = paths.backup();
        match Existing::at(&paths.interpreter)? {
            Existing::Shim => {
                if fs::symlink_metadata(&backup).is_ok() {
                    restore_entry(&backup, &paths.interpreter)?;
                    println!(
                        "removed the {} shim from {} and restored the loader it replaced from {}",
                        system.nix,
                        paths.shown.display(),
                        backup.display()
                    );
                } else {
                    fs::remove_file(&paths.interpreter)
                        .with_context(|| format!("cannot remove {}", paths.interpreter.display()))?;
                    println!("removed the {} shim from {}", system.nix, paths.shown.display());
                }
                did_something = true;
            }
            Existing::Other if paths.state.exists() => {
                eprintln!("warning: {} is not ld-shim any more; leaving it as it is", paths.shown.display());
            }
            _ => {}
        }
        if remove_if_present(&paths.config)? {
            println!("removed {}", paths.config.display());
            did_something = true;
        }
        if paths.state.exists() {
            fs::remove_dir_all(&paths.state)
                .with_context(|| format!("cannot remove {}", paths.state.display()))?;
            println!("removed {}", paths.state.display());
            did_something = true;
        }
    }
    // Leave no empty directories of ours behind.
    for dir in ["/var/lib/fhskit/ld-shim", "/var/lib/fhskit", "/etc/fhskit"] {
        let dir = resolve_in_root(&root, Path::new(dir))?;
        let _ = fs::remove_dir(dir);
    }
    if !did_something {
        println!("nothing to uninstall under {}", root.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn status(args: &StatusArgs) -> Result<ExitCode> {
    let root = check_root(&args.root.root)?;
    let mut reports = Vec::new();
    for (system, built) in all_systems(&args.root)? {
        let paths = Paths::new(&root, system)?;
        let installed = match Existing::at(&paths.interpreter)? {
            Existing::Absent => "absent",
            Existing::Shim => "ld-shim",
            Existing::Other => "other loader",
        };
        let config_text = fs::read(&paths.config).ok();
        // A foreign system's loader path says nothing unless we put something there.
        let foreign = system != system::NATIVE && system != system::I686;
        if foreign && args.root.systems.is_empty() && installed != "ld-shim" && config_text.is_none() {
            continue;
        }
        let config = config_text.as_deref().map(ld_shim::config::parse);
        let in_root = |value: &[u8]| -> Option<PathBuf> {
            resolve_in_root(&root, Path::new(&String::from_utf8_lossy(value).into_owned())).ok()
        };
        let loader = config.and_then(|c| c.loader).and_then(in_root);
        let loader_target = loader.as_ref().and_then(|l| fs::read_link(l).ok());
        let loader_ok = loader.as_ref().is_some_and(|l| fs::metadata(l).is_ok_and(|m| m.is_file()));
        let library_dir = config.and_then(|c| c.library_path).and_then(in_root);
        let libraries = library_dir.as_ref().and_then(|d| fs::read_dir(d).ok()).map_or(0, |d| d.count());
        // A set built from packages is a link into the store.
        let library_set = library_dir.as_ref().and_then(|d| fs::read_link(d).ok());
        let backup = paths.backup();
        let backup = fs::symlink_metadata(&backup).is_ok().then_some(backup);
        // The installed shim describes what it would use (run directly, it reads the same config).
        let shim_says = (installed == "ld-shim").then(|| describe(&paths.shown)).flatten();
        reports.push(serde_json::json!({
            "system": system.nix,
            "built_in": built.is_some(),
            "interpreter": paths.shown,
            "installed": installed,
            "config": config_text.is_some().then_some(&paths.config),
            "loader": loader,
            "loader_target": loader_target,
            "loader_ok": loader_ok,
            "library_dir": library_dir,
            "libraries": libraries,
            "library_set": library_set,
            "backup": backup,
            "shim_reports": shim_says,
        }));
    }
    if args.json {
        crate::output::json(&mut std::io::stdout().lock(), &reports)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    for report in &reports {
        let text = |key: &str| match &report[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".to_owned(),
            other => other.to_string(),
        };
        writeln!(out, "{}:", text("system"))?;
        writeln!(out, "  interpreter:  {} ({})", text("interpreter"), text("installed"))?;
        if report["installed"] == "absent" && report["config"].is_null() {
            continue;
        }
        writeln!(out, "  config:       {}", text("config"))?;
        let state = if report["loader_ok"] == true { "ok" } else { "missing" };
        let target = if report["loader_target"].is_null() {
            String::new()
        } else {
            format!(" -> {}", text("loader_target"))
        };
        if report["loader"].is_null() {
            writeln!(out, "  loader:       none configured (NIX_LD or the compiled-in default)")?;
        } else {
            writeln!(out, "  loader:       {}{target} ({state})", text("loader"))?;
        }
        writeln!(out, "  libraries:    {} in {}", text("libraries"), text("library_dir"))?;
        if !report["library_set"].is_null() {
            writeln!(out, "  library set:  {} (in the store, kept by a GC root)", text("library_set"))?;
        }
        if !report["backup"].is_null() {
            writeln!(out, "  backup:       {} (restored by uninstall)", text("backup"))?;
        }
        if let Some(lines) = report["shim_reports"].as_array() {
            for line in lines {
                writeln!(out, "  shim reports: {}", line.as_str().unwrap_or_default())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the shim directly without arguments and an empty environment; returns its `loader:` and `library path:`
/// lines.
fn describe(shim: &Path) -> Option<Vec<String>> {
    let output = Command::new(shim).env_clear().output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let lines: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("ld-shim: "))
        .filter(|line| line.starts_with("loader:") || line.starts_with("library path:"))
        .map(str::to_owned)
        .collect();
    (!lines.is_empty()).then_some(lines)
}

/// Resolves `inner` (an absolute path inside `root`) to a host path, following symlinks in its directories as a
/// chroot would (`safefs`: absolute targets restart at `root`, `..` never climbs above it). The last component is
/// not followed, so that a symlink there can itself be replaced or removed.
fn resolve_in_root(root: &Path, inner: &Path) -> Result<PathBuf> {
    safefs::resolve_in_root(root, inner, safefs::Follow::Parents)
        .with_context(|| format!("cannot resolve {} under {}", inner.display(), root.display()))
}

fn create_dirs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Writes `bytes` to `path` safely with exactly `mode`, the rename itself flushed to disk: every program on the
/// system depends on the loader and its configuration.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let options = safefs::WriteOptions::default().mode(mode).durability(safefs::Durability::FileAndDirectory);
    safefs::write_file(path, bytes, &options).with_context(|| format!("cannot write {}", path.display()))
}

/// Points `link` at `target`, replacing what is there atomically.
fn replace_with_symlink(target: &Path, link: &Path) -> Result<()> {
    let temp = safefs::temp_path_beside(link);
    let _ = fs::remove_file(&temp);
    symlink(target, &temp)
        .and_then(|()| fs::rename(&temp, link))
        .with_context(|| format!("cannot create symlink {}", link.display()))
}

/// Copies a file or a symlink (as a symlink) from `from` to `to`.
fn copy_entry(from: &Path, to: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(from).with_context(|| format!("cannot back up {}", from.display()))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(from).with_context(|| format!("cannot back up {}", from.display()))?;
        replace_with_symlink(&target, to)
    } else {
        let bytes = fs::read(from).with_context(|| format!("cannot back up {}", from.display()))?;
        write_atomic(to, &bytes, meta.permissions().mode() & 0o7777)
    }
}

/// Puts a backup back in place atomically.
fn restore_entry(backup: &Path, path: &Path) -> Result<()> {
    copy_entry(backup, path)
        .with_context(|| format!("cannot restore {} from {}", path.display(), backup.display()))
}

/// Removes a file or symlink if present; returns whether it was there.
fn remove_if_present(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
}
