//! `fhskit store …`: the Nix-compatible store from the command line (nix-store/nix-hash equivalents). Opens the
//! store from `--store`/`FHSKIT_STORE` (a base directory, or `local?root=DIR` for a Nix-style chroot store) and
//! turns each subcommand into calls to the `store` crate; queries print text or, with `--json`, JSON.

use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use store::{FileIngestion, GcOptions, HashAlgo, Store, StoreConfig, StorePath};

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The store: a base directory (`DIR/store`, `DIR/var`) or `local?root=DIR` (logical `/nix/store`, files under
    /// DIR). Default: `$XDG_DATA_HOME/fhskit` (`/var/lib/fhskit` for root).
    #[arg(long, env = "FHSKIT_STORE", global = true)]
    pub store: Option<String>,
}

impl StoreArgs {
    pub fn open(&self) -> Result<Store> {
        let config = StoreConfig::from_arg(self.store.as_deref())?;
        let dir = config.physical_store_dir();
        Store::open(config).with_context(|| format!("cannot open the store at {}", dir.display()))
    }
}

#[derive(Debug, Args)]
pub struct JsonArg {
    #[arg(long, help = crate::output::JSON_HELP)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Add files or directories as content-addressed `source` paths (`nix-store --add`); prints the paths.
    Add {
        paths: Vec<PathBuf>,
        /// Name in the store (default: the file name); only with one path.
        #[arg(long)]
        name: Option<String>,
        /// A store path the added tree refers to (repeatable); each must be valid.
        #[arg(long = "reference", value_name = "STORE_PATH")]
        references: Vec<String>,
        /// Record as references the valid paths whose hashes occur in the tree.
        #[arg(long)]
        scan_references: bool,
        /// Make LINK a GC root of the added path before the command ends (LINK-2, LINK-3, … for further paths), so
        /// no collection running meanwhile can take it (adding first and linking after races with a collection).
        #[arg(long, value_name = "LINK")]
        add_root: Option<PathBuf>,
    },
    /// Add files as fixed-output paths (`nix-store --add-fixed [--recursive] ALGO`).
    AddFixed {
        /// Hash the NAR instead of the flat file contents.
        #[arg(long, short)]
        recursive: bool,
        algo: String,
        paths: Vec<PathBuf>,
    },
    /// Hash files as `nix-hash` does: the NAR serialisation unless --flat; base-16 unless --base32/--sri.
    Hash {
        #[arg(long = "type", default_value = "md5")]
        algo: String,
        #[arg(long)]
        flat: bool,
        #[arg(long, conflicts_with = "sri")]
        base32: bool,
        #[arg(long)]
        sri: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write the NAR serialisation of a path to stdout (`nix-store --dump`).
    Dump { path: PathBuf },
    /// Recreate a NAR from stdin at DIR (`nix-store --restore`); DIR must not exist. Symlinks may point anywhere,
    /// as with Nix (nothing is ever written through one); entry names with `/`, NUL, `.` or `..` are refused.
    Restore { dir: PathBuf },
    /// Write paths in `nix-store --export` format to stdout.
    Export {
        paths: Vec<String>,
        /// Export the closure of the paths (references first), so the stream imports on its own.
        #[arg(long)]
        closure: bool,
    },
    /// Import a `nix-store --export` stream from stdin, all or nothing; prints the imported paths.
    Import,
    /// What the store records about paths.
    PathInfo {
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// The closure of paths: everything they refer to, references before referrers.
    Closure {
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// The paths that refer to a path (with --closure: transitively).
    Referrers {
        path: String,
        #[arg(long)]
        closure: bool,
        #[command(flatten)]
        json: JsonArg,
    },
    /// The garbage collector roots: `LINK -> PATH`.
    Roots {
        #[command(flatten)]
        json: JsonArg,
    },
    /// The valid path whose hash starts with PREFIX (at least 4 characters).
    Find {
        prefix: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Delete unreachable paths (`nix-store --gc`).
    Gc {
        #[arg(long, conflicts_with_all = ["print_live", "print_dead"])]
        print_roots: bool,
        #[arg(long, conflicts_with = "print_dead")]
        print_live: bool,
        #[arg(long)]
        print_dead: bool,
        /// Stop after freeing this many bytes.
        #[arg(long, value_name = "BYTES")]
        max_freed: Option<u64>,
        /// Keep the outputs of live derivations (default: the `keep-outputs` setting of nix.conf).
        #[arg(long)]
        keep_outputs: bool,
        /// Do not keep the derivations of live paths.
        #[arg(long)]
        no_keep_derivations: bool,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Build derivations (`DRV`, `DRV!out,dev`) and print their output paths (`nix-store --realise`).
    Realise {
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        options: crate::commands::build::BuildOptions,
    },
    /// Query derivations (`nix-store --query`): `--outputs` prints their output paths.
    Query {
        /// The output paths of each derivation.
        #[arg(long, required = true)]
        outputs: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Delete specific paths (and dead paths referring to them); refuses live ones.
    Delete {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Recompute NAR hashes and check references of valid paths (all, or those given); exit 1 on problems.
    Verify {
        paths: Vec<String>,
        /// Also require a valid signature by a key of `trusted-public-keys` (or `secret-key-files`) on every path
        /// that was not built here and is not content-addressed.
        #[arg(long)]
        sigs: bool,
        /// Repair the (single) given path from this NAR file, which must match the registered hash.
        #[arg(long, value_name = "NAR")]
        repair_from: Option<PathBuf>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Copy paths with their closures to or from a binary cache (`nix copy`): file://DIR, http(s)://…, s3://BUCKET.
    #[command(group(clap::ArgGroup::new("direction").required(true).args(["to", "from"])))]
    Copy {
        /// Destination cache URL, with Nix's parameters (`?compression=zstd&secret-key=FILE&…`).
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Source cache URL: the paths and their references are substituted into the local store.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// Accept paths from the cache without a signature by a trusted key.
        #[arg(long)]
        no_check_sigs: bool,
        /// NARs compressed and transferred at once (default: the number of cores, for downloads
        /// `max-substitution-jobs`).
        #[arg(long)]
        jobs: Option<usize>,
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Upload the build logs of derivations (or of the derivations of outputs) to a binary cache's `log/`
    /// (`nix store copy-log`); `fhskit log` and Nix read them from there.
    CopyLog {
        #[arg(long, value_name = "URL")]
        to: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Make a signing key pair for binary caches (`nix-store --generate-binary-cache-key NAME SK PK`).
    GenerateKey {
        /// The key name, usually `host-1` (signatures say which key made them by this name).
        name: String,
        /// Where to write the secret key (mode 0600); must not exist.
        secret_key_file: std::path::PathBuf,
        /// Where to write the public key (for `trusted-public-keys`); must not exist.
        public_key_file: std::path::PathBuf,
    },
    /// Sign store paths with a secret key, in the local store or (with --cache) in a binary cache's narinfos.
    Sign {
        #[arg(long, short = 'k', value_name = "FILE", required = true)]
        key_file: Vec<std::path::PathBuf>,
        /// Sign the narinfos of this binary cache instead of the local store's records.
        #[arg(long, value_name = "URL")]
        cache: Option<String>,
        /// Sign the closures of the paths.
        #[arg(long)]
        closure: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Hard-link identical files in the store; reports the bytes saved.
    Optimise {
        #[command(flatten)]
        json: JsonArg,
    },
}

pub fn run(command: StoreCommand, args: StoreArgs) -> Result<ExitCode> {
    let out = io::stdout();
    let mut out = BufWriter::new(out.lock());
    let code = dispatch(command, &args, &mut out)?;
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        r => r.context("cannot write to stdout")?,
    }
    Ok(code)
}

pub(super) fn paths_of(store: &Store, texts: &[String]) -> Result<Vec<StorePath>> {
    texts.iter().map(|t| store.resolve_user_path(t).map_err(Into::into)).collect()
}

pub(super) fn valid(store: &Store, texts: &[String]) -> Result<Vec<StorePath>> {
    let paths = paths_of(store, texts)?;
    for p in &paths {
        if !store.is_valid(p)? {
            bail!("path '{p}' is not valid in the store");
        }
    }
    Ok(paths)
}

fn name_of(path: &Path) -> Result<String> {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = path.file_name().or(canonical.file_name());
    name.map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("cannot choose a store name for {} (use --name)", path.display()))
}

/// The `n`-th (from 0) of a series of links named after `link`: `LINK`, `LINK-2`, `LINK-3`, … (absolute).
fn numbered_link(link: &Path, n: usize) -> Result<PathBuf> {
    let link = std::path::absolute(link).with_context(|| format!("cannot resolve {}", link.display()))?;
    Ok(if n == 0 { link } else { PathBuf::from(format!("{}-{}", link.display(), n + 1)) })
}

fn print_lines(out: &mut impl Write, paths: &[StorePath], json: bool) -> Result<()> {
    if json {
        let v: Vec<String> = paths.iter().map(ToString::to_string).collect();
        crate::output::json(out, &v)?;
    } else {
        for p in paths {
            writeln!(out, "{p}")?;
        }
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn dispatch(command: StoreCommand, args: &StoreArgs, out: &mut impl Write) -> Result<ExitCode> {
    match command {
        StoreCommand::Hash { .. }
        | StoreCommand::Dump { .. }
        | StoreCommand::Restore { .. }
        | StoreCommand::GenerateKey { .. } => run_offline(command, out),
        other => dispatch_store(other, &args.open()?, out),
    }
}

/// The subcommands that work on plain files and need no store.
fn run_offline(command: StoreCommand, out: &mut impl Write) -> Result<ExitCode> {
    match command {
        StoreCommand::Hash { algo, flat, base32, sri, paths } => {
            let algo = HashAlgo::parse(&algo)?;
            for path in paths {
                let hash = if flat {
                    let mut f = std::fs::File::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    let mut h = store::hash::Hasher::new(algo);
                    io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
                    h.finish()
                } else {
                    store::nar::hash_path(&path, algo)
                        .with_context(|| format!("cannot hash {}", path.display()))?
                        .0
                };
                let text = if sri {
                    hash.to_sri()
                } else if base32 {
                    hash.to_nix32()
                } else {
                    hash.to_hex()
                };
                writeln!(out, "{text}")?;
            }
        }
        StoreCommand::Dump { path } => {
            store::nar::dump(&path, &mut *out).with_context(|| format!("cannot dump {}", path.display()))?;
        }
        StoreCommand::Restore { dir } => {
            if std::fs::symlink_metadata(&dir).is_ok() {
                bail!("cannot restore into {}: it already exists", dir.display());
            }
            let options = store::nar::RestoreOptions { read_only: false, confine_symlinks: None };
            let stdin = io::stdin();
            let mut input = BufReader::new(stdin.lock());
            if let Err(e) = store::nar::restore(&mut input, &dir, &options) {
                let _ = std::fs::remove_dir_all(&dir).or_else(|_| std::fs::remove_file(&dir));
                return Err(anyhow::Error::new(e).context(format!("cannot restore into {}", dir.display())));
            }
        }
        StoreCommand::GenerateKey { name, secret_key_file, public_key_file } => {
            super::cache::generate_key(&name, &secret_key_file, &public_key_file)?;
        }
        other => return Err(anyhow::anyhow!("internal error: {other:?} needs a store")),
    }
    Ok(ExitCode::SUCCESS)
}

fn dispatch_store(command: StoreCommand, store: &Store, out: &mut impl Write) -> Result<ExitCode> {
    match command {
        StoreCommand::Add { paths, name, references, scan_references, add_root } => {
            if name.is_some() && paths.len() != 1 {
                bail!("--name needs exactly one path");
            }
            let refs = valid(store, &references)?;
            for (added, path) in paths.iter().enumerate() {
                let name = match &name {
                    Some(n) => n.clone(),
                    None => name_of(path)?,
                };
                let mut refs = refs.clone();
                if scan_references {
                    refs.extend(store.scan_all_references(path)?);
                }
                let p = store
                    .add_tree(&name, path, &refs)
                    .with_context(|| format!("cannot add {}", path.display()))?;
                // The add left a temporary root in this process, so the path stays alive until the link exists.
                if let Some(link) = &add_root {
                    let link = numbered_link(link, added)?;
                    store
                        .add_root(&link, &p)
                        .with_context(|| format!("cannot add the GC root {}", link.display()))?;
                }
                writeln!(out, "{p}")?;
            }
        }
        StoreCommand::AddFixed { recursive, algo, paths } => {
            let algo = HashAlgo::parse(&algo)?;
            let method = if recursive { FileIngestion::Recursive } else { FileIngestion::Flat };
            for path in &paths {
                let p = store
                    .add_fixed(&name_of(path)?, path, method, algo)
                    .with_context(|| format!("cannot add {}", path.display()))?;
                writeln!(out, "{p}")?;
            }
        }
        StoreCommand::Export { paths, closure } => {
            let mut paths = valid(store, &paths)?;
            if closure {
                paths = store.closure(&paths)?;
            }
            store.export(&paths, out).context("cannot export")?;
        }
        StoreCommand::Import => {
            let stdin = io::stdin();
            let mut input = BufReader::new(stdin.lock());
            let imported =
                store.import(&mut input).context("cannot import from stdin (nothing was imported)")?;
            print_lines(out, &imported, false)?;
        }
        StoreCommand::PathInfo { paths, json } => {
            let paths = valid(store, &paths)?;
            let mut infos = Vec::new();
            for p in &paths {
                let info =
                    store.path_info(p)?.with_context(|| format!("path '{p}' is not valid in the store"))?;
                let referrers: Vec<String> = store.referrers(p)?.iter().map(ToString::to_string).collect();
                infos.push((info, referrers));
            }
            if json.json {
                let v: Vec<_> = infos
                    .iter()
                    .map(|(i, referrers)| {
                        json!({
                            "path": i.path.to_string(),
                            "narHash": i.nar_hash.to_sri(),
                            "narSize": i.nar_size,
                            "references": i.references.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            "referrers": referrers,
                            "deriver": i.deriver.as_ref().map(ToString::to_string),
                            "registrationTime": i.registration_time,
                            "ultimate": i.ultimate,
                            "signatures": i.sigs,
                            "ca": i.ca.as_ref().map(ToString::to_string),
                        })
                    })
                    .collect();
                crate::output::json(out, &v)?;
            } else {
                for (i, referrers) in &infos {
                    writeln!(out, "path: {}", i.path)?;
                    writeln!(out, "nar-hash: {}", i.nar_hash)?;
                    writeln!(out, "nar-size: {}", i.nar_size)?;
                    for r in &i.references {
                        writeln!(out, "reference: {r}")?;
                    }
                    for r in referrers {
                        writeln!(out, "referrer: {r}")?;
                    }
                    if let Some(d) = &i.deriver {
                        writeln!(out, "deriver: {d}")?;
                    }
                    writeln!(out, "registration-time: {}", i.registration_time)?;
                    if let Some(ca) = &i.ca {
                        writeln!(out, "ca: {ca}")?;
                    }
                    writeln!(out)?;
                }
            }
        }
        StoreCommand::Closure { paths, json } => {
            let paths = valid(store, &paths)?;
            print_lines(out, &store.closure(&paths)?, json.json)?;
        }
        StoreCommand::Referrers { path, closure, json } => {
            let p = valid(store, &[path])?.remove(0);
            let list: Vec<StorePath> = if closure {
                store.reverse_closure(std::slice::from_ref(&p))?
            } else {
                store.referrers(&p)?.into_iter().collect()
            };
            print_lines(out, &list, json.json)?;
        }
        StoreCommand::Roots { json } => print_roots(store, out, json.json)?,
        StoreCommand::Find { prefix, json } => {
            let p = store.find(&prefix)?;
            print_lines(out, &[p], json.json)?;
        }
        StoreCommand::Gc {
            print_roots: roots,
            print_live,
            print_dead,
            max_freed,
            keep_outputs,
            no_keep_derivations,
            json,
        } => {
            let settings = crate::commands::build::load_settings()?;
            let options = GcOptions {
                keep_derivations: !no_keep_derivations && settings.keep_derivations,
                keep_outputs: keep_outputs || settings.keep_outputs,
                max_freed,
            };
            if roots {
                print_roots(store, out, json.json)?;
            } else if print_live || print_dead {
                eprintln!("finding garbage collector roots...");
                eprintln!("determining {} paths...", if print_live { "live" } else { "dead" });
                let list =
                    if print_live { store.live_paths(&options)? } else { store.dead_paths(&options)? };
                print_lines(out, &list, json.json)?;
            } else {
                eprintln!("finding garbage collector roots...");
                let result = store.collect_garbage(&options).context("garbage collection failed")?;
                report_deleted(&result, out, json.json)?;
            }
        }
        StoreCommand::Realise { paths, options } => {
            return crate::commands::build::run_realise(store, &paths, &options, out);
        }
        StoreCommand::Query { outputs: _, paths } => {
            crate::commands::build::run_query_outputs(store, &paths, out)?
        }
        StoreCommand::Delete { paths } => {
            let paths = valid(store, &paths)?;
            match store.delete_paths(&paths, &GcOptions::default()) {
                Ok(result) => report_deleted(&result, out, false)?,
                Err(e @ (store::StoreError::Alive(_) | store::StoreError::Referenced { .. })) => {
                    return Err(crate::hint::hinted(
                        e.to_string(),
                        "`fhskit store roots` shows what keeps paths alive",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        StoreCommand::Verify { paths, sigs, repair_from, json } => {
            let paths = if paths.is_empty() { None } else { Some(valid(store, &paths)?) };
            if let Some(nar) = repair_from {
                let [p] = paths.as_deref().unwrap_or_default() else {
                    bail!("--repair-from needs exactly one store path");
                };
                let f =
                    std::fs::File::open(&nar).with_context(|| format!("cannot open {}", nar.display()))?;
                store
                    .repair_from_nar(p, &mut BufReader::new(f))
                    .with_context(|| format!("cannot repair {p} from {}", nar.display()))?;
                eprintln!("repaired '{p}'");
            }
            let report = store.verify(paths.as_deref())?;
            let mut problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
            if sigs {
                problems.extend(super::cache::untrusted(store, paths.as_deref())?);
            }
            let shown = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
            if json.json {
                let v = json!({
                    "checked": report.checked,
                    "problems": problems,
                    "removedTemporaries": shown(&report.removed_temporaries),
                    "unregistered": shown(&report.unregistered),
                });
                crate::output::json(out, &v)?;
            } else {
                for p in &problems {
                    eprintln!("error: {p}");
                }
                for p in &report.removed_temporaries {
                    eprintln!("removed {}, left by a killed process", p.display());
                }
                for p in &report.unregistered {
                    eprintln!(
                        "warning: {} is not a registered path (an interrupted add or collection left it; \
                         `fhskit store gc` removes it)",
                        p.display()
                    );
                }
                writeln!(out, "checked {} paths, {} problems", report.checked, problems.len())?;
            }
            if !problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        StoreCommand::Copy { to, from, no_check_sigs, jobs, paths, json } => {
            super::cache::copy(store, to, from, no_check_sigs, jobs, &paths, json.json, out)?;
        }
        StoreCommand::CopyLog { to, paths } => super::cache::copy_log(store, &to, &paths)?,
        StoreCommand::Sign { key_file, cache, closure, paths } => {
            super::cache::sign(store, &key_file, cache.as_deref(), closure, &paths, out)?;
        }
        StoreCommand::Optimise { json } => {
            let r = store.optimise()?;
            if json.json {
                crate::output::json(
                    out,
                    &json!({ "filesLinked": r.files_linked, "bytesSaved": r.bytes_saved }),
                )?;
            } else {
                writeln!(out, "{} freed by hard-linking {} files", mib(r.bytes_saved), r.files_linked)?;
            }
        }
        offline @ (StoreCommand::Hash { .. }
        | StoreCommand::Dump { .. }
        | StoreCommand::Restore { .. }
        | StoreCommand::GenerateKey { .. }) => {
            return run_offline(offline, out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_roots(store: &Store, out: &mut impl Write, json: bool) -> Result<()> {
    let roots = store.find_roots()?;
    if json {
        let v: Vec<_> = roots
            .iter()
            .map(|r| json!({ "link": r.link.to_string_lossy(), "path": r.target.to_string() }))
            .collect();
        crate::output::json(out, &v)?;
    } else {
        for r in roots {
            writeln!(out, "{} -> {}", r.link.display(), r.target)?;
        }
    }
    Ok(())
}

fn report_deleted(result: &store::GcResult, out: &mut impl Write, json: bool) -> Result<()> {
    if json {
        let deleted: Vec<String> = result.deleted.iter().map(ToString::to_string).collect();
        crate::output::json(out, &json!({ "deleted": deleted, "bytesFreed": result.bytes_freed }))?;
        return Ok(());
    }
    for p in &result.deleted {
        eprintln!("deleting '{p}'");
    }
    writeln!(out, "{} store paths deleted, {} freed", result.deleted.len(), mib(result.bytes_freed))?;
    Ok(())
}
