//! `fhskit steam-run [--32] COMMAND…`: run anything inside an FHS env holding a broad default library set for
//! games and desktop programs (the steam-run idea). The set is resolved and built once (`realise`, `fhsenv`), put in
//! the store and remembered under a GC root keyed by the set and the source options, so later starts only enter it.
//! Libraries of the set that no source provides are skipped (listed with `-v`); the C runtime is required.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use sha2::{Digest, Sha256};
use store::Store;

use super::run::SourceArgs;
use crate::closure::Class;
use crate::realise::{self, Needs};
use crate::strategy::{self, Plan, Strategy};

/// Always required: the C and C++ runtime and a shell, so scripts and most programs start.
const CORE: &[&str] = &[
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
            plan
        }
    };
    if verbose > 0 {
        plan.describe();
    }
    let mut plan = plan;
    plan.program = program;
    strategy::execute(&plan, &args.command[1..])
}

fn build(store: &Store, args: &SteamRunArgs, key: &str, verbose: u8) -> Result<Plan> {
    let machine = patchelf_rs::raw::EM_X86_64;
    let mut classes = vec![Class::Elf64];
    if args.with_32 {
        classes.push(Class::Elf32);
    }
    let mut needs = Needs { machine, ..Default::default() };
    for class in &classes {
        for s in CORE {
            needs.sonames.insert((*class, (*s).to_owned()));
        }
        let loader = if *class == Class::Elf64 { "ld-linux-x86-64.so.2" } else { "ld-linux.so.2" };
        needs.sonames.insert((*class, loader.to_owned()));
        for s in DEFAULT_SET {
            needs.optional.insert((*class, (*s).to_owned()));
        }
    }
    needs.paths = vec!["/bin/sh".into(), "/bin/bash".into(), "/bin/ls".into(), "/usr/bin/env".into()];
    let closure = realise::realise(store, &needs, &args.sources.source_options())?;
    if !closure.unresolved.is_empty() {
        let list: Vec<String> = closure.unresolved.keys().cloned().collect();
        bail!("cannot build the steam-run env: no source provides {}", list.join(", "));
    }
    let total = DEFAULT_SET.len() * classes.len();
    eprintln!(
        "fhskit: steam-run env with {} packages; {} of {} default libraries available",
        closure.packages.len(),
        total - closure.optional_missing.len(),
        total
    );
    if verbose > 0 && !closure.optional_missing.is_empty() {
        eprintln!("  not available: {}", closure.optional_missing.join(", "));
    }
    let name = if args.with_32 { "steam-run-32" } else { "steam-run" };
    let (env, env_path) = strategy::build_env(store, name, &closure, &[])?;
    // The key is not a file identity here; the cached-plan check needs `program` to exist, so it names the env.
    let stored = Plan {
        strategy: Strategy::Fhs,
        reason: "steam-run".into(),
        program: env.clone(),
        elf: PathBuf::new(),
        class: Class::Elf64,
        machine,
        patched: None,
        shim: None,
        loader: None,
        library_path: Vec::new(),
        env: Some(env),
        packages: closure.packages.clone(),
        bundled: Vec::new(),
    };
    let mut refs = closure.store_paths(store)?;
    refs.push(env_path);
    strategy::remember(store, key, &stored, &refs)?;
    Ok(stored)
}
