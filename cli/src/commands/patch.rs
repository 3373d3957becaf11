//! `fhskit patch BINARY… [--in-place | --out DIR] [--add-to-profile]`: autoPatchelf for any binary. Resolves and
//! realises what the files need (`closure`, `realise`), then rewrites every ELF file (executables get the
//! closure's loader; every object gets a `DT_RPATH` with its own `$ORIGIN` entries and the closure's library
//! directories) so they run without FHS paths. By default the result goes into the store as one path referring to
//! its dependencies; `--add-to-profile` installs it into the default profile as a new generation.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use patchelf_rs::dynamic::{self, Class, DynamicInfo};
use pkgs::closure::{Need, Needs};
use store::Store;

use super::run::SourceArgs;
use crate::realise::{self, Hints};
use crate::strategy;

/// Sonames that belong to the C library: left to the host's loader with `--keep-libc`.
const LIBC_SONAMES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libresolv.so.2",
    "libutil.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux.so.2",
    "ld-linux-aarch64.so.1",
];

#[derive(Debug, Args)]
pub struct PatchArgs {
    /// Files or directories (every ELF file inside is patched; libraries inside satisfy each other).
    #[arg(required = true)]
    pub binaries: Vec<PathBuf>,
    /// Rewrite the files where they are instead of adding a patched copy to the store.
    #[arg(long, conflicts_with = "out")]
    pub in_place: bool,
    /// Write the patched copies into DIR instead of the store.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Install the store path into the default profile (a new generation).
    #[arg(long, conflicts_with_all = ["in_place", "out"])]
    pub add_to_profile: bool,
    /// Sonames (or `*` patterns) that may stay unresolved (autoPatchelf's ignore-missing).
    #[arg(long = "ignore-missing", value_name = "PATTERN")]
    pub ignore_missing: Vec<String>,
    /// A library every file gets on its run path although no header names it (a dlopen'd one; repeatable).
    #[arg(long = "runtime-dependency", value_name = "SONAME")]
    pub runtime_dependencies: Vec<String>,
    /// Keep the interpreter and leave the C library to the host (only other libraries come from the closure).
    #[arg(long)]
    pub keep_libc: bool,
    #[command(flatten)]
    pub sources: SourceArgs,
}

/// The ELF files named by the arguments (directories walked), with the base each one is relative to.
fn collect(inputs: &[PathBuf]) -> Result<Vec<(PathBuf, PathBuf, DynamicInfo)>> {
    let mut out = Vec::new();
    for input in inputs {
        let input =
            std::path::absolute(input).with_context(|| format!("cannot resolve {}", input.display()))?;
        let meta =
            fs::symlink_metadata(&input).with_context(|| format!("cannot patch {}", input.display()))?;
        if meta.is_dir() {
            let mut stack = vec![input.clone()];
            while let Some(d) = stack.pop() {
                let mut entries: Vec<_> = fs::read_dir(&d)
                    .with_context(|| format!("cannot list {}", d.display()))?
                    .flatten()
                    .collect();
                entries.sort_by_key(|e| e.file_name());
                for e in entries {
                    let ft = e.file_type()?;
                    if ft.is_dir() {
                        stack.push(e.path());
                    } else if ft.is_file()
                        && let Ok(Some(f)) = DynamicInfo::read(&e.path())
                        && f.dynamic
                    {
                        out.push((input.clone(), e.path(), f));
                    }
                }
            }
        } else {
            match DynamicInfo::read(&input)? {
                Some(f) if f.dynamic => {
                    out.push((input.parent().unwrap_or(Path::new("/")).to_path_buf(), input.clone(), f))
                }
                Some(_) => bail!("cannot patch {}: statically linked, nothing to patch", input.display()),
                None => bail!("cannot patch {}: not an ELF file", input.display()),
            }
        }
    }
    if out.is_empty() {
        bail!(
            "no dynamically linked ELF file found in {}",
            inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}

/// The library `soname` found in one of `f`'s `$ORIGIN` run-path directories, if any holds one of its class.
fn bundled_by_origin(f: &DynamicInfo, soname: &str) -> Option<DynamicInfo> {
    f.rpath.iter().chain(f.runpath.iter()).filter(|e| e.contains("ORIGIN")).find_map(|entry| {
        let candidate = dynamic::expand(entry, &f.path, f.class, f.machine).join(soname);
        dynamic::read_matching(&candidate, f.class, f.machine)
    })
}

pub fn run(args: PatchArgs) -> Result<ExitCode> {
    let store = Store::open(args.sources.store_config()?)?;
    let files = collect(&args.binaries)?;
    let machine = files[0].2.machine;
    // Libraries among the inputs satisfy each other (a bundle), whatever their run paths say.
    let provided: BTreeSet<(Class, String)> = files
        .iter()
        .map(|(_, p, f)| {
            (
                f.class,
                f.soname.clone().unwrap_or_else(|| {
                    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                }),
            )
        })
        .collect();
    let mut needs = Needs { machine, ..Default::default() };
    let require = |needs: &mut Needs, class: Class, soname: String, by: &Path| {
        let need = Need::Soname(class, soname);
        needs.needed_by.entry(need.clone()).or_default().insert(by.to_path_buf());
        needs.required.insert(need);
    };
    for (_, path, f) in &files {
        if let (Some(name), false) = (f.loader_name(), args.keep_libc) {
            require(&mut needs, f.class, name, path);
        }
        for n in &args.runtime_dependencies {
            require(&mut needs, f.class, n.clone(), path);
        }
    }
    // Needs of the inputs and of the libraries they reach through their own `$ORIGIN` run paths (an application's
    // bundled `lib/`): bundled libraries stay where they are, found through the kept `$ORIGIN` entries, and what
    // they need in turn comes from the closure through the executable's DT_RPATH.
    let mut queue: Vec<DynamicInfo> = files.iter().map(|(_, _, f)| f.clone()).collect();
    let mut seen: BTreeSet<PathBuf> = queue.iter().map(|f| f.path.clone()).collect();
    while let Some(f) = queue.pop() {
        for n in &f.needed {
            if provided.contains(&(f.class, n.clone())) || n.contains('/') {
                continue;
            }
            match bundled_by_origin(&f, n) {
                Some(lib) => {
                    if seen.insert(lib.path.clone()) {
                        queue.push(lib);
                    }
                }
                None => require(&mut needs, f.class, n.clone(), &f.path),
            }
        }
    }
    needs.ignore = args.ignore_missing.clone();
    if args.keep_libc {
        needs.ignore.extend(LIBC_SONAMES.iter().map(|s| (*s).to_owned()));
    }
    let closure = realise::resolve(&store, &needs, &args.sources.source_options())?;
    realise::check("cannot patch", &closure, Hints { ignore_missing: true })?;
    let libc_dirs: BTreeSet<PathBuf> = if args.keep_libc {
        closure
            .packages
            .iter()
            .filter(|p| p.key.starts_with("libc6:") || p.key.starts_with("libc6-i386:"))
            .map(|p| p.dir.clone())
            .collect()
    } else {
        BTreeSet::new()
    };
    let rpath_for = |f: &DynamicInfo| -> Vec<String> {
        let mut dirs: Vec<String> =
            f.rpath.iter().chain(f.runpath.iter()).filter(|e| e.contains("ORIGIN")).cloned().collect();
        for d in closure.lib_dirs(f.class) {
            let d = d.display().to_string();
            if !libc_dirs.iter().any(|l| Path::new(&d).starts_with(l)) && !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        dirs
    };
    let interp_for = |f: &DynamicInfo| -> Result<Option<PathBuf>> {
        if args.keep_libc || f.interpreter.is_none() {
            return Ok(None);
        }
        let name = Path::new(f.interpreter.as_deref().unwrap_or_default())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        closure
            .file(f.class, &name)
            .map(|p| Some(p.to_path_buf()))
            .ok_or_else(|| anyhow!("no package of the closure provides the loader {name}"))
    };
    if args.in_place {
        for (_, path, f) in &files {
            strategy::apply_patchelf(
                path,
                &strategy::patch_options(interp_for(f)?.as_deref(), &rpath_for(f), true),
            )?;
            println!("{}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(out) = &args.out {
        fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        for (base, path, f) in &files {
            let rel = path.strip_prefix(base).unwrap_or(path);
            let dest = out.join(rel);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let tmp = tempfile::Builder::new()
                .prefix(".fhskit-patch-")
                .tempfile_in(dest.parent().unwrap_or(out))?;
            fs::copy(path, tmp.path()).with_context(|| format!("cannot copy {}", path.display()))?;
            strategy::apply_patchelf(
                tmp.path(),
                &strategy::patch_options(interp_for(f)?.as_deref(), &rpath_for(f), true),
            )?;
            tmp.persist(&dest).with_context(|| format!("cannot write {}", dest.display()))?;
            println!("{}", dest.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Into the store: directories keep their layout; single executables go to bin/, libraries to lib/.
    let tmp = tempfile::Builder::new().prefix(".fhskit-patch-").tempdir_in(store.state_dir())?;
    let root = tmp.path().join("out");
    fs::create_dir(&root)?;
    for input in &args.binaries {
        let input = std::path::absolute(input)?;
        if input.is_dir() {
            copy_tree(&input, &root)?;
        }
    }
    for (base, path, f) in &files {
        let dest =
            if args.binaries.iter().any(|b| std::path::absolute(b).is_ok_and(|b| b == *base && b.is_dir())) {
                root.join(path.strip_prefix(base).unwrap_or(path))
            } else {
                let sub = if f.interpreter.is_some() { "bin" } else { "lib" };
                root.join(sub).join(path.file_name().unwrap_or_default())
            };
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let _ = fs::remove_file(&dest);
        fs::copy(path, &dest).with_context(|| format!("cannot copy {}", path.display()))?;
        let mode = fs::metadata(&dest)?.permissions().mode();
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode | 0o200))?;
        strategy::apply_patchelf(
            &dest,
            &strategy::patch_options(interp_for(f)?.as_deref(), &rpath_for(f), true),
        )?;
    }
    let name = format!("{}-patched", strategy::sanitize(&args.binaries[0]));
    let refs = realise::store_paths(&store, &closure)?;
    let path = store.add_tree(&name, &root, &refs)?;
    if args.add_to_profile {
        let profile = store.default_profile();
        let mut pkgs = store.profile_packages(&profile).unwrap_or_default();
        pkgs.retain(|p| p.name() != path.name());
        pkgs.push(path.clone());
        let env = store.build_user_environment(&pkgs)?;
        let (generation, _) = store.create_generation(&profile, &env)?;
        eprintln!("installed into {} (generation {generation})", profile.path().display());
    } else {
        let link = std::env::current_dir()?.join("result");
        store.add_root(&link, &path)?;
        eprintln!("created ./result -> {}", path.to_absolute().display());
    }
    println!("{}", store.physical_path(&path).display());
    Ok(ExitCode::SUCCESS)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for e in fs::read_dir(src).with_context(|| format!("cannot list {}", src.display()))?.flatten() {
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type()?;
        if ft.is_dir() {
            fs::create_dir_all(&d)?;
            copy_tree(&s, &d)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&s)?, &d)?;
        } else {
            fs::copy(&s, &d).with_context(|| format!("cannot copy {}", s.display()))?;
        }
    }
    Ok(())
}
