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
        #[arg(long, help = crate::output::JSON_HELP)]
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
    /// Add store paths (or paths to add first) to the profile as a new generation; with -f, the derivations of
    /// a Nix file (`-A` attributes of it), built first (`nix-env -f FILE -iA ATTR`).
    Install {
        #[arg(required_unless_present = "file")]
        paths: Vec<String>,
        /// Install from this Nix file (built as `fhskit build FILE -A ATTR` builds it); PATHS are then not given.
        #[arg(short = 'f', long, value_name = "FILE", conflicts_with = "paths")]
        file: Option<String>,
        /// With -f: the attribute paths to install (repeatable; none: the file's value).
        #[arg(short = 'A', long = "attr", value_name = "ATTR", requires = "file")]
        attr: Vec<String>,
        /// With -f: pass `NAME = EXPR` to the file's function.
        #[arg(long = "arg", num_args = 2, value_names = ["NAME", "EXPR"], requires = "file")]
        arg: Vec<String>,
        /// With -f: pass `NAME = "STRING"` to the file's function.
        #[arg(long = "argstr", num_args = 2, value_names = ["NAME", "STRING"], requires = "file")]
        argstr: Vec<String>,
        /// With -f: a search path entry (`nixpkgs=…`).
        #[arg(short = 'I', long = "include", requires = "file")]
        include: Vec<String>,
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
                crate::output::json(&mut out, &v)?;
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
        ProfileCommand::Install { paths, file, attr, arg, argstr, include } => {
            let mut packages = store.profile_packages(&profile)?;
            if let Some(file) = file {
                let built = match build_from_file(&store, &args, file, attr, arg, argstr, include)? {
                    Ok(b) => b,
                    Err(code) => return Ok(code),
                };
                for p in built {
                    eprintln!("installing '{}'", p.name());
                    packages.retain(|q| q.name() != p.name());
                    packages.push(p);
                }
                switch_to(&store, &profile, &packages)?;
                return Ok(ExitCode::SUCCESS);
            }
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

/// Evaluates FILE (its `-A` attributes), builds the selected outputs as `fhskit build` does and returns them.
fn build_from_file(
    store: &Store,
    args: &ProfileArgs,
    file: String,
    attr: Vec<String>,
    arg: Vec<String>,
    argstr: Vec<String>,
    include: Vec<String>,
) -> Result<std::result::Result<Vec<store::StorePath>, ExitCode>> {
    let mut argv: Vec<String> = vec![file];
    for a in attr {
        argv.extend(["-A".into(), a]);
    }
    for pair in arg.chunks(2) {
        argv.push("--arg".into());
        argv.extend(pair.iter().cloned());
    }
    for pair in argstr.chunks(2) {
        argv.push("--argstr".into());
        argv.extend(pair.iter().cloned());
    }
    for i in include {
        argv.extend(["-I".into(), i]);
    }
    if let Some(s) = &args.store.store {
        argv.extend(["--store".into(), s.clone()]);
    }
    let common = crate::commands::eval::common_args(&argv)?;
    let pairs = match crate::commands::eval::instantiate_for_build(common) {
        Ok(p) => p,
        Err(Ok(msg)) => {
            eprintln!("{msg}");
            return Ok(Err(ExitCode::from(1)));
        }
        Err(Err(e)) => return Err(e),
    };
    let mut targets: Vec<build::DerivedPath> = Vec::new();
    let mut wanted = Vec::new();
    for (drv, output) in pairs {
        let drv = store.parse_path(&drv)?;
        targets.push(build::DerivedPath::outputs(drv.clone(), [output.clone()]));
        wanted.push((drv, output));
    }
    let options = crate::commands::build::BuildOptions::default();
    let realised = match crate::commands::build::realise(store, &options, &targets)? {
        Ok(r) => r,
        Err(code) => return Ok(Err(code)),
    };
    Ok(Ok(wanted.iter().map(|(drv, output)| realised[drv][output].clone()).collect()))
}

fn switch_to(store: &Store, profile: &Profile, packages: &[store::StorePath]) -> Result<()> {
    let env = store.build_user_environment(packages).context("cannot build the user environment")?;
    let (n, new) = store.create_generation(profile, &env)?;
    if new {
        eprintln!("created generation {n} of {}", profile.path().display());
    }
    Ok(())
}
