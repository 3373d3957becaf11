//! `fhskit profile …`: profiles and generations as `nix-env` keeps them (`P -> P-N-link -> store path`), on the
//! store of `--store`. `install`/`remove` build a new user environment (a symlink tree of the packages) and make
//! it the next generation; the others list, switch and delete generations.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use store::{DeleteSpec, Profile, Store};

use super::store::StoreArgs;

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The profile symlink (default: the store's `profiles/default`).
    #[arg(long, short, global = true)]
    pub profile: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List generations as `nix-env --list-generations` does.
    ListGenerations {
        #[arg(long)]
        json: bool,
    },
    /// Switch to the previous generation.
    Rollback,
    /// Switch to generation N.
    SwitchGeneration { number: u64 },
    /// Delete generations: `old`, `+N` (keep the last N), `Nd` (older than N days), or numbers.
    DeleteGenerations {
        #[arg(required = true, allow_hyphen_values = true)]
        spec: Vec<String>,
    },
    /// Add store paths (or paths to add first) to the profile as a new generation.
    Install {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove packages by store path or by name (the part after the hash) as a new generation.
    Remove {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn profile(store: &Store, args: &ProfileArgs) -> Profile {
    match &args.profile {
        Some(p) => Profile::new(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        None => store.default_profile(),
    }
}

pub fn run(command: ProfileCommand, args: ProfileArgs) -> Result<ExitCode> {
    let store = args.store.open()?;
    let profile = profile(&store, &args);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        ProfileCommand::ListGenerations { json } => {
            let gens = profile.generations()?;
            if json {
                let v: Vec<_> = gens
                    .iter()
                    .map(|g| {
                        json!({"number": g.number, "created": g.created, "current": g.current,
                               "path": g.target.to_string_lossy()})
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string(&v)?)?;
            } else {
                write!(out, "{}", store::profile::format_generations(&gens, true))?;
            }
        }
        ProfileCommand::Rollback => {
            let (from, to) = profile.rollback()?;
            eprintln!("switching profile from version {from} to {to}");
        }
        ProfileCommand::SwitchGeneration { number } => {
            let from = profile.switch(number)?;
            match from {
                Some(from) => eprintln!("switching profile from version {from} to {number}"),
                None => eprintln!("switching profile to version {number}"),
            }
        }
        ProfileCommand::DeleteGenerations { spec } => {
            let spec = DeleteSpec::parse(&spec)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
            for n in profile.delete_generations(&spec, now)? {
                eprintln!("removing profile version {n}");
            }
        }
        ProfileCommand::Install { paths } => {
            let mut packages = store.profile_packages(&profile)?;
            for text in &paths {
                let p = match store.resolve_user_path(text) {
                    Ok(p) => p,
                    Err(_) => {
                        let path = PathBuf::from(text);
                        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).with_context(
                            || format!("cannot install '{text}': not a store path or a file"),
                        )?;
                        store.add_tree(&name, &path, &[]).with_context(|| format!("cannot add {text}"))?
                    }
                };
                if !store.is_valid(&p)? {
                    anyhow::bail!("cannot install '{p}': it is not valid in the store");
                }
                // Same-name install replaces, as nix-env does.
                packages.retain(|q| q.name() != p.name());
                packages.push(p);
            }
            switch_to(&store, &profile, &packages)?;
        }
        ProfileCommand::Remove { names } => {
            let before = store.profile_packages(&profile)?;
            let packages: Vec<_> = before
                .iter()
                .filter(|p| !names.iter().any(|n| n == p.name() || *n == p.to_string()))
                .cloned()
                .collect();
            for n in &names {
                if !before.iter().any(|p| n == p.name() || *n == p.to_string()) {
                    anyhow::bail!("the profile {} has no package '{n}'", profile.path().display());
                }
            }
            for p in before.iter().filter(|p| !packages.contains(p)) {
                eprintln!("uninstalling '{}'", p.name());
            }
            switch_to(&store, &profile, &packages)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn switch_to(store: &Store, profile: &Profile, packages: &[store::StorePath]) -> Result<()> {
    let env = store.build_user_environment(packages).context("cannot build the user environment")?;
    let (n, new) = store.create_generation(profile, &env)?;
    if new {
        eprintln!("created generation {n} of {}", profile.path().display());
    }
    Ok(())
}
