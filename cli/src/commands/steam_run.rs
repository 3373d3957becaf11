//! `fhskit steam-run [--32] COMMAND…`: run anything inside an FHS env holding a broad default library set for
//! games and desktop programs (the steam-run idea). The set is resolved and built once (`realise`, `fhsenv`), put in
//! the store and remembered under a GC root keyed by the set and the source options, so later starts only enter it.
//! Libraries of the set that no source provides are skipped (listed with `-v`); the C runtime is required.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use std::collections::BTreeSet;

use anyhow::Result;
use clap::Args;
use patchelf_rs::dynamic::Class;
use pkgs::closure::{Need, Needs, OptionalGroup};
use sha2::{Digest, Sha256};
use store::Store;

use super::run::SourceArgs;
use crate::realise::{self, Hints};
use crate::strategy::{self, Plan, PlanPackage, Strategy};

/// Always required: the C and C++ runtime and a shell, so scripts and most programs start.
pub const CORE: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libstdc++.so.6",
    "libgcc_s.so.1",
];

/// The broad default set (cf. steam-run's multiPkgs and nix-ld's defaults), each optional.
pub const DEFAULT_SET: &[&str] = &[
    "libz.so.1",
    "libbz2.so.1.0",
    "liblzma.so.5",
    "libzstd.so.1",
    "libcrypt.so.1",
    "libuuid.so.1",
    "libexpat.so.1",
    "libffi.so.8",
    "libGL.so.1",
    "libGLX.so.0",
    "libEGL.so.1",
    "libGLU.so.1",
    "libvulkan.so.1",
    "libdrm.so.2",
    "libgbm.so.1",
    "libX11.so.6",
    "libX11-xcb.so.1",
    "libxcb.so.1",
    "libXext.so.6",
    "libXrandr.so.2",
    "libXrender.so.1",
    "libXcursor.so.1",
    "libXi.so.6",
    "libXinerama.so.1",
    "libXfixes.so.3",
    "libXcomposite.so.1",
    "libXdamage.so.1",
    "libXxf86vm.so.1",
    "libXss.so.1",
    "libXtst.so.6",
    "libSM.so.6",
    "libICE.so.6",
    "libxkbcommon.so.0",
    "libwayland-client.so.0",
    "libwayland-cursor.so.0",
    "libwayland-egl.so.1",
    "libasound.so.2",
    "libpulse.so.0",
    "libopenal.so.1",
    "libfontconfig.so.1",
    "libfreetype.so.6",
    "libharfbuzz.so.0",
    "libglib-2.0.so.0",
    "libgobject-2.0.so.0",
    "libgio-2.0.so.0",
    "libgtk-3.so.0",
    "libgdk_pixbuf-2.0.so.0",
    "libpango-1.0.so.0",
    "libcairo.so.2",
    "libdbus-1.so.3",
    "libcups.so.2",
    "libnss3.so",
    "libnspr4.so",
    "libudev.so.1",
    "libusb-1.0.so.0",
    "libcap.so.2",
    "libssl.so.3",
    "libcrypto.so.3",
    "libcurl.so.4",
    "libgnutls.so.30",
    "libSDL2-2.0.so.0",
    "libogg.so.0",
    "libvorbis.so.0",
    "libvorbisfile.so.3",
    "libpng16.so.16",
    "libjpeg.so.62",
    "libtinfo.so.6",
    "libncursesw.so.6",
    "libxml2.so.2",
    "libsqlite3.so.0",
    "libgssapi_krb5.so.2",
];

#[derive(Debug, Args)]
pub struct SteamRunArgs {
    /// Also provide the 32-bit (i386) half of the set, for 32-bit games and launchers.
    #[arg(long = "32")]
    pub with_32: bool,
    /// Build the env again even if a cached one exists.
    #[arg(long)]
    pub refresh: bool,
    #[command(flatten)]
    pub sources: SourceArgs,
    /// The command and its arguments (looked up on the env's PATH, or a path).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

pub fn run(args: SteamRunArgs, verbose: u8) -> Result<ExitCode> {
    let config = args.sources.store_config()?;
    let mut h = Sha256::new();
    h.update(format!("steam-run|{}|{}|{CORE:?}|{DEFAULT_SET:?}", args.with_32, args.sources.salt()));
    let key: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    let program = PathBuf::from(&args.command[0]);
    let plan = match (!args.refresh).then(|| strategy::cached(&config, &key)).flatten() {
        Some(plan) => plan,
        None => {
            let store = Store::open(config)?;
            let plan = build(&store, &args, &key, verbose)?;
            drop(store);
            if !fhsenv::userns::single_threaded() {
                return Err(strategy::reexec_prepared());
            }
            plan
        }
    };
    if verbose > 0 {
        plan.describe();
    }
    let mut plan = plan;
    plan.program = program.clone();
    plan.exec = program;
    strategy::execute(&plan, &args.command[1..])
}

/// The needs of the steam-run set: the C/C++ runtime, the loaders and a shell required, every library of the
/// default set (and the other shell tools) optional, for 64-bit and with `with_32` also 32-bit programs.
pub fn set_needs(with_32: bool) -> Needs {
    let machine = patchelf_rs::raw::EM_X86_64;
    let mut classes = vec![Class::Elf64];
    if with_32 {
        classes.push(Class::Elf32);
    }
    let mut needs = Needs { machine, ..Default::default() };
    for class in &classes {
        for s in CORE {
            needs.required.insert(Need::Soname(*class, (*s).to_owned()));
        }
        let loader = if *class == Class::Elf64 { "ld-linux-x86-64.so.2" } else { "ld-linux.so.2" };
        needs.required.insert(Need::Soname(*class, loader.to_owned()));
        for s in DEFAULT_SET {
            let label = format!("{s} ({}-bit)", class.bits());
            needs.optional.push(OptionalGroup {
                label,
                needs: BTreeSet::from([Need::Soname(*class, (*s).to_owned())]),
            });
        }
    }
    needs.required.insert(Need::Path("/bin/sh".into()));
    for p in ["/bin/bash", "/bin/ls", "/usr/bin/env"] {
        needs.optional.push(OptionalGroup { label: p.into(), needs: BTreeSet::from([Need::Path(p.into())]) });
    }
    needs
}

fn build(store: &Store, args: &SteamRunArgs, key: &str, verbose: u8) -> Result<Plan> {
    let needs = set_needs(args.with_32);
    let closure = realise::resolve(store, &needs, &args.sources.source_options())?;
    realise::check("cannot build the steam-run env", &closure, Hints { ignore_missing: false })?;
    let total = needs.optional.len();
    eprintln!(
        "fhskit: steam-run env with {} packages; {} of {} default libraries and tools available",
        closure.packages.len(),
        total - closure.left_out.len(),
        total
    );
    if verbose > 0 {
        for l in &closure.left_out {
            eprintln!("  not available: {} ({})", l.label, l.missing.reason);
        }
    }
    let name = if args.with_32 { "steam-run-32" } else { "steam-run" };
    let (env, env_path) = strategy::build_env(store, name, &closure, &[], &[])?;
    // The key is not a file identity here; the cached-plan check needs `program` to exist, so it names the env.
    let stored = Plan {
        strategy: Strategy::Fhs,
        reason: "steam-run".into(),
        program: env.clone(),
        elf: PathBuf::new(),
        class: 64,
        machine: patchelf_rs::raw::EM_X86_64,
        exec: env.clone(),
        env: Vec::new(),
        shim: None,
        interpreter: None,
        loader: None,
        library_path: Vec::new(),
        layers: None,
        env_dir: Some(env),
        binds: Vec::new(),
        packages: PlanPackage::of(&closure),
        bundled: Vec::new(),
        patched: Vec::new(),
        left_out: closure.left_out.iter().map(|l| l.label.clone()).collect(),
    };
    let mut refs = realise::store_paths(store, &closure)?;
    refs.push(env_path);
    strategy::remember(store, key, &stored, &refs)?;
    Ok(stored)
}
