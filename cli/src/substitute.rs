//! Glue between the `cache` crate and the commands: the substitution settings (`[cache]` in the configuration
//! file, then `--option NAME VALUE`), the shared HTTP client, progress bars for transfers, and
//! [`substitute`], which every command that needs store paths calls before building or fetching them: it
//! fetches what the configured caches have and, when a cache fails, says so in one warning and lets the caller
//! fall back.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use store::{Store, StorePath};

static OPTIONS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Records the global `--option NAME VALUE` pairs (once, from `main`). Each part of fhskit reads the names it
/// knows from them ([`options`]); [`settings`] takes the substitution ones.
pub fn set_options(pairs: &[String]) -> Result<()> {
    let mut options = Vec::new();
    for pair in pairs.chunks(2) {
        let [name, value] = pair else { anyhow::bail!("--option needs a NAME and a VALUE") };
        options.push((name.clone(), value.clone()));
    }
    let _ = OPTIONS.set(options);
    Ok(())
}

/// Every `--option NAME VALUE` pair, in order.
pub fn options() -> &'static [(String, String)] {
    OPTIONS.get().map(Vec::as_slice).unwrap_or_default()
}

/// The settings: the `[cache]` table of the configuration file, then `--option`.
pub fn settings() -> Result<cache::Settings> {
    let options: Vec<(String, String)> =
        options().iter().filter(|(name, _)| cache::settings::is_known(name)).cloned().collect();
    let config = std::env::var_os("FHSKIT_CONFIG").map(std::path::PathBuf::from);
    let explicit = config.is_some();
    let config = config.or_else(pkgs::config::default_config_file);
    Ok(cache::Settings::load(config.as_deref(), explicit, &options)?)
}

pub fn http(settings: &cache::Settings) -> Result<cache::HttpClient> {
    Ok(cache::HttpClient::new(settings.connect_timeout, settings.download_attempts)?)
}

/// Progress bars for transfers, one per path in flight, on a terminal only.
pub struct Bars {
    multi: Option<indicatif::MultiProgress>,
    bars: Mutex<HashMap<StorePath, indicatif::ProgressBar>>,
    verb: &'static str,
}

impl Bars {
    pub fn new(verb: &'static str) -> Bars {
        let multi = std::io::stderr().is_terminal().then(indicatif::MultiProgress::new);
        Bars { multi, bars: Mutex::new(HashMap::new()), verb }
    }
}

impl cache::Progress for Bars {
    fn start(&self, path: &StorePath, size: u64) {
        let Some(multi) = &self.multi else { return };
        let bar = multi.add(indicatif::ProgressBar::new(size));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("{} {}", self.verb, path.name()));
        self.bars.lock().unwrap_or_else(|p| p.into_inner()).insert(path.clone(), bar);
    }

    fn advance(&self, path: &StorePath, bytes: u64) {
        if let Some(bar) = self.bars.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            bar.inc(bytes);
        }
    }

    fn finish(&self, path: &StorePath) {
        if let Some(bar) = self.bars.lock().unwrap_or_else(|p| p.into_inner()).remove(path) {
            bar.finish_and_clear();
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Substitutes the missing ones among `paths` (and their references) from the configured caches. Prints Nix's
/// "these N paths will be fetched" summary and, if any cache failed or a path could not be had, one warning.
/// Returns the paths that are still missing (the caller builds or fetches them, or reports them).
pub fn substitute(store: &Store, paths: &[StorePath]) -> Result<Vec<StorePath>> {
    let settings = settings()?;
    substitute_with(store, paths, &settings)
}

pub fn substitute_with(
    store: &Store,
    paths: &[StorePath],
    settings: &cache::Settings,
) -> Result<Vec<StorePath>> {
    let mut missing = Vec::new();
    for p in paths {
        if !store.is_valid(p)? {
            missing.push(p.clone());
        }
    }
    if missing.is_empty() || !settings.substitute || settings.substituters.is_empty() {
        return Ok(missing);
    }
    let subs = cache::Substituters::open(settings, store.store_dir(), &http(settings)?)
        .context("cannot set up the substituters")?;
    let mut problems = subs.open_errors.clone();
    let report = subs.substitute(store, &missing, &Bars::new("copying"))?;
    if !report.substituted.is_empty() {
        let n = report.substituted.len();
        eprintln!(
            "{} fetched ({} download, {} unpacked):",
            if n == 1 { "this path was".to_owned() } else { format!("these {n} paths were") },
            mib(report.download_size),
            mib(report.nar_size)
        );
        let mut names: Vec<&StorePath> = report.substituted.iter().collect();
        names.sort_by(|a, b| a.name().cmp(b.name()));
        for p in names {
            eprintln!("  {p}");
        }
    }
    problems.extend(report.problems.iter().cloned());
    let still: Vec<StorePath> = missing.into_iter().filter(|p| !store.is_valid(p).unwrap_or(false)).collect();
    if !problems.is_empty() {
        let what = if still.is_empty() {
            "substitution had problems"
        } else {
            "substitution failed; building or fetching instead"
        };
        eprintln!("warning: {what}: {}", problems.join("; "));
    }
    Ok(still)
}

/// Substitutes the store paths among `dirs` that do not exist yet (packages an env.toml names by their store
/// paths, e.g. one `fhskit generate` wrote on another machine). The store is the one `FHSKIT_STORE` names (or
/// the default); directories outside it are left to the caller.
pub fn realise_dirs<'a>(dirs: impl Iterator<Item = &'a std::path::Path>) -> Result<()> {
    let absent: Vec<&std::path::Path> = dirs.filter(|d| std::fs::symlink_metadata(d).is_err()).collect();
    if absent.is_empty() {
        return Ok(());
    }
    let config = store::StoreConfig::from_env()?;
    let store_dir = config.physical_store_dir();
    if !absent.iter().any(|d| d.starts_with(&store_dir) || d.starts_with(config.store_dir.as_path())) {
        return Ok(());
    }
    let store =
        Store::open(config).with_context(|| format!("cannot open the store at {}", store_dir.display()))?;
    let wanted: Vec<StorePath> =
        absent.iter().filter_map(|d| store.resolve_user_path(&d.to_string_lossy()).ok()).collect();
    substitute(&store, &wanted)?;
    Ok(())
}

/// The binary caches as the builder's substituter (`fhskit build`, `store realise`): each missing output or
/// input is fetched with its closure before anything is built; a cache that fails is skipped from then on, and
/// the first failure is reported in one warning, after which the builder builds what could not be fetched.
pub struct BuildSubstituter {
    subs: cache::Substituters,
    bars: Bars,
    warned: std::sync::atomic::AtomicBool,
}

impl BuildSubstituter {
    /// `None` when substitution is off or no cache is configured.
    pub fn open(store: &Store) -> Result<Option<BuildSubstituter>> {
        let settings = settings()?;
        if !settings.substitute || settings.substituters.is_empty() {
            return Ok(None);
        }
        let subs = cache::Substituters::open(&settings, store.store_dir(), &http(&settings)?)
            .context("cannot set up the substituters")?;
        let s = BuildSubstituter { subs, bars: Bars::new("copying"), warned: Default::default() };
        if !s.subs.open_errors.is_empty() {
            s.warn(&s.subs.open_errors);
        }
        Ok(Some(s))
    }

    fn warn(&self, problems: &[String]) {
        if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!("warning: substitution failed; building instead: {}", problems.join("; "));
        }
    }
}

impl build::Substituter for BuildSubstituter {
    fn has(&self, path: &StorePath) -> bool {
        self.subs.has(path)
    }

    fn substitute(
        &self,
        store: &Store,
        path: &StorePath,
    ) -> std::result::Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let report = self.subs.substitute(store, std::slice::from_ref(path), &self.bars)?;
        if !report.problems.is_empty() {
            self.warn(&report.problems);
        }
        Ok(store.is_valid(path)?)
    }
}

/// The build log of `path` from the configured caches (`drvs`: its derivations known locally), for `fhskit log`
/// when the store has none.
pub fn remote_log(store: &Store, path: &StorePath, drvs: &[StorePath]) -> Result<Option<String>> {
    let settings = settings()?;
    if settings.substituters.is_empty() {
        return Ok(None);
    }
    let subs = cache::Substituters::open(&settings, store.store_dir(), &http(&settings)?)?;
    Ok(subs.log(path, drvs))
}
