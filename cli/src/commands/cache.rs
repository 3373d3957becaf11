//! Binary-cache commands: `fhskit store copy --to/--from`, `store generate-key`, `store sign`, the signature
//! half of `store verify --sigs`, and `fhskit serve`. They turn arguments into calls to the `cache` crate;
//! settings (trusted keys, `require-sigs`, …) come from [`crate::substitute::settings`].

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cache::{BinaryCache, SecretKey, Substituters};
use clap::Args;
use store::{Store, StorePath};

use crate::substitute::{Bars, http, settings};

/// `store copy`.
#[allow(clippy::too_many_arguments)]
pub fn copy(
    store: &Store,
    to: Option<String>,
    from: Option<String>,
    no_check_sigs: bool,
    jobs: Option<usize>,
    paths: &[String],
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let settings = settings()?;
    let http = http(&settings)?;
    if let Some(url) = to {
        let paths = super::store::valid(store, paths)?;
        let mut cache = BinaryCache::open(&url, store.store_dir(), &http, true)
            .with_context(|| format!("cannot open binary cache '{url}'"))?;
        if cache.params.secret_keys.is_empty() {
            for f in &settings.secret_key_files {
                cache.params.secret_keys.push(SecretKey::read_file(f)?);
            }
        }
        let report = cache::copy::copy_to(
            store,
            &cache,
            &paths,
            jobs.unwrap_or_else(cache::jobs),
            &Bars::new("compressing"),
        )
        .with_context(|| format!("cannot copy to '{}'", cache.url()))?;
        if !json {
            eprintln!("copying {} paths...", report.copied.len());
        }
        for n in &report.copied {
            if !json {
                eprintln!("copying path '{}' to '{}'...", n.path, cache.url());
            }
        }
        print_paths(out, report.copied.iter().map(|n| &n.path), json)?;
        return Ok(());
    }
    let url = from.expect("clap requires --to or --from");
    let wanted: Vec<StorePath> = super::store::paths_of(store, paths)?;
    let mut settings = settings;
    settings.substituters = vec![url.clone()];
    settings.substitute = true;
    settings.require_sigs &= !no_check_sigs;
    if let Some(j) = jobs {
        settings.max_substitution_jobs = j.max(1);
    }
    let subs = Substituters::open(&settings, store.store_dir(), &http)?;
    if let Some(e) = subs.open_errors.first() {
        bail!("{e}");
    }
    let report = subs.substitute(store, &wanted, &Bars::new("copying"))?;
    if !json {
        for p in &report.substituted {
            eprintln!("copying path '{p}' from '{url}'...");
        }
    }
    if !report.failed.is_empty() {
        for p in &report.problems {
            eprintln!("error: {p}");
        }
        let reasons: Vec<String> = report.failed.iter().map(|(_, why)| why.clone()).collect();
        bail!("cannot copy {} paths from '{url}': {}", report.failed.len(), reasons.join("; "));
    }
    print_paths(out, report.substituted.iter(), json)?;
    Ok(())
}

fn print_paths<'a>(
    out: &mut impl Write,
    paths: impl Iterator<Item = &'a StorePath>,
    json: bool,
) -> Result<()> {
    let paths: Vec<String> = paths.map(ToString::to_string).collect();
    if json {
        crate::output::json(out, &paths)?;
    } else {
        for p in paths {
            writeln!(out, "{p}")?;
        }
    }
    Ok(())
}

/// `store copy-log --to URL PATH…`.
pub fn copy_log(store: &Store, url: &str, paths: &[String]) -> Result<()> {
    let settings = settings()?;
    let cache = BinaryCache::open(url, store.store_dir(), &http(&settings)?, true)
        .with_context(|| format!("cannot open binary cache '{url}'"))?;
    let log_dir = store.config().physical_log_dir();
    for text in paths {
        let p = store.resolve_user_path(text)?;
        let drv = if p.is_derivation() {
            p.clone()
        } else {
            store
                .path_info(&p)?
                .and_then(|i| i.deriver)
                .with_context(|| format!("'{p}' has no known derivation"))?
        };
        let log = build::log::read_log(&log_dir, &drv)?
            .with_context(|| format!("build log of '{p}' is not available"))?;
        cache.add_log(&drv, &log).with_context(|| format!("cannot upload the build log of '{drv}'"))?;
        eprintln!("copied the build log of '{drv}' to '{}'", cache.url());
    }
    Ok(())
}

/// Writes `contents` to a new file `path` with `mode`; refuses to replace an existing file.
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// `store generate-key NAME SK PK`.
pub fn generate_key(name: &str, secret: &Path, public: &Path) -> Result<()> {
    for p in [secret, public] {
        if std::fs::symlink_metadata(p).is_ok() {
            bail!("cannot write {}: it already exists (a key is never overwritten)", p.display());
        }
    }
    let key = SecretKey::generate(name)?;
    write_new(secret, &key.to_string(), 0o600)?;
    if let Err(e) = write_new(public, &key.public().to_string(), 0o644) {
        let _ = std::fs::remove_file(secret);
        return Err(e);
    }
    Ok(())
}

/// `store sign`: adds signatures to local paths or to a cache's narinfos.
pub fn sign(
    store: &Store,
    key_files: &[PathBuf],
    cache_url: Option<&str>,
    closure: bool,
    paths: &[String],
    out: &mut impl Write,
) -> Result<()> {
    let keys: Vec<SecretKey> = key_files.iter().map(|f| SecretKey::read_file(f)).collect::<Result<_, _>>()?;
    let added = match cache_url {
        Some(url) => {
            let settings = settings()?;
            let cache = BinaryCache::open(url, store.store_dir(), &http(&settings)?, false)
                .with_context(|| format!("cannot open binary cache '{url}'"))?;
            let mut wanted = super::store::paths_of(store, paths)?;
            if closure {
                wanted = cache_closure(&cache, &wanted)?;
            }
            cache::copy::sign_in_cache(&cache, &wanted, &keys)?
        }
        None => {
            let mut wanted = super::store::valid(store, paths)?;
            if closure {
                wanted = store.closure(&wanted)?;
            }
            let mut added = 0;
            for p in &wanted {
                let info =
                    store.path_info(p)?.with_context(|| format!("path '{p}' is not valid in the store"))?;
                let fp =
                    cache::narinfo::fingerprint(&info.path, &info.nar_hash, info.nar_size, &info.references);
                let sigs: Vec<String> = keys.iter().map(|k| k.sign(&fp)).collect();
                added += store.add_signatures(p, &sigs)?;
            }
            added
        }
    };
    writeln!(out, "added {added} signatures")?;
    Ok(())
}

/// The closure of `paths` as a cache's narinfos describe it.
fn cache_closure(cache: &BinaryCache, paths: &[StorePath]) -> Result<Vec<StorePath>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<StorePath> = paths.to_vec();
    while let Some(p) = todo.pop() {
        if seen.insert(p.clone()) {
            let info = cache
                .narinfo(&p)?
                .with_context(|| format!("path '{p}' is not in binary cache '{}'", cache.url()))?;
            todo.extend(info.references.into_iter().filter(|r| !seen.contains(r)));
        }
    }
    Ok(seen.into_iter().collect())
}

/// `store verify --sigs`: paths that are neither built here (`ultimate`), nor content-addressed, nor signed by
/// a trusted key.
pub fn untrusted(store: &Store, paths: Option<&[StorePath]>) -> Result<Vec<String>> {
    let keys = cache::substituter::trusted_keys(&settings()?)?;
    let all;
    let paths = match paths {
        Some(p) => p,
        None => {
            all = store.all_paths()?;
            &all
        }
    };
    let mut problems = Vec::new();
    for p in paths {
        let Some(info) = store.path_info(p)? else { continue };
        if info.ultimate || info.ca.is_some() {
            continue;
        }
        let fp = cache::narinfo::fingerprint(&info.path, &info.nar_hash, info.nar_size, &info.references);
        if keys.count_valid(&fp, &info.sigs) == 0 {
            problems.push(format!(
                "path '{p}' is untrusted: it has no signature by a key in 'trusted-public-keys'"
            ));
        }
    }
    Ok(problems)
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "ADDR:PORT")]
    listen: String,
    /// Sign every narinfo with this secret key (repeatable); also NIX_SECRET_KEY_FILE.
    #[arg(long = "sign-key", value_name = "FILE", env = "NIX_SECRET_KEY_FILE")]
    sign_keys: Vec<PathBuf>,
    /// The priority announced in nix-cache-info (lower is asked first).
    #[arg(long, default_value_t = 30)]
    priority: i64,
    /// Most connections served at once; more get 503.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    #[command(flatten)]
    store: super::store::StoreArgs,
}

/// `fhskit serve`.
pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let store = args.store.open()?;
    let keys: Vec<SecretKey> =
        args.sign_keys.iter().map(|f| SecretKey::read_file(f)).collect::<Result<_, _>>()?;
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("cannot read the listening address")?;
    eprintln!("serving {} on http://{addr}", store.store_dir());
    let log_dir = store.config().physical_log_dir();
    let logs: cache::serve::LogReader =
        std::sync::Arc::new(move |drv: &StorePath| build::log::read_log(&log_dir, drv).ok().flatten());
    let options = cache::serve::ServeOptions {
        logs: Some(logs),
        sign_keys: keys,
        priority: args.priority,
        max_connections: args.max_connections.max(1),
        ..Default::default()
    };
    cache::serve::serve(&store, listener, &options)?;
    Ok(ExitCode::SUCCESS)
}
