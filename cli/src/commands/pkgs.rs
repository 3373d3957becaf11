//! `fhskit pkgs …` and `fhskit locate`: Debian package sources from signed apt repositories.
//!
//! Turns flags into [`pkgs::config::Settings`], takes the cache lock for commands that change the cache, draws the
//! download progress bar (only on a terminal), and hands fetched packages either to a directory (`--into`) or to
//! the store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use pkgs::cache::{Cache, CacheLock};
use pkgs::config::{LoadOptions, Settings};
use pkgs::http::Http;
use pkgs::index::SuiteIndex;
use pkgs::lock::Lock;
use pkgs::packages::Universe;
use pkgs::resolve::{Request, resolve};
use pkgs::signature::Keyring;

/// Options every package command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// A repository in apt's one-line form, e.g. "[signed-by=/path/key.gpg arch=amd64,i386] http://127.0.0.1:8080/debian
    /// bookworm main" (repeatable; replaces the configured repositories' fallback to the host's apt sources).
    #[arg(long = "repo", value_name = "SPEC", global = true)]
    pub repos: Vec<String>,
    /// Architectures for repositories that name none (repeatable or comma-separated; default: the native one).
    #[arg(long = "arch", value_name = "ARCH", value_delimiter = ',', global = true)]
    pub arch: Vec<String>,
    /// Configuration file (default: $XDG_CONFIG_HOME/fhskit/config.toml).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Root directory whose etc/apt and var/lib/dpkg describe the host (default: /).
    #[arg(long, value_name = "DIR", env = "FHSKIT_HOST_ROOT", global = true)]
    pub host_root: Option<PathBuf>,
    #[arg(long, global = true, help = crate::output::JSON_HELP)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PkgsCommand {
    /// Download and verify the repositories' indexes (InRelease, Packages, Contents) and build the soname index.
    Update,
    /// List packages whose name or description contains PATTERN.
    Search { pattern: String },
    /// Show a package's fields (every version and architecture).
    Show { package: String },
    /// Resolve packages (name[:arch][=version]) to their dependency closure and write it to a lock file.
    Resolve {
        #[arg(required = true)]
        packages: Vec<String>,
        /// The lock file to write; an existing one pins earlier choices.
        #[arg(long, default_value = "fhskit.lock")]
        lock: PathBuf,
    },
    /// Download, verify and unpack packages: the closure of PACKAGES, or exactly what a lock file lists.
    Fetch {
        packages: Vec<String>,
        /// Read the closure from this lock file instead of resolving (default when no PACKAGES: fhskit.lock).
        #[arg(long)]
        lock: Option<PathBuf>,
        /// Unpack each package into DIR/<name>-<version> instead of adding it to the store.
        #[arg(long, value_name = "DIR", conflicts_with = "add_root")]
        into: Option<PathBuf>,
        /// The store to add packages to (a base directory or `local?root=DIR`; default: $XDG_DATA_HOME/fhskit).
        #[arg(long, env = "FHSKIT_STORE")]
        store: Option<String>,
        /// Keep the fetched store paths from garbage collection: a root link DIR/<name>-<version> for each.
        #[arg(long, value_name = "DIR")]
        add_root: Option<PathBuf>,
        /// Only download and verify into the cache; print the cached .deb files.
        #[arg(long, conflicts_with = "into")]
        download_only: bool,
        /// Parallel downloads and unpacks.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Never copy packages from the host's dpkg database.
        #[arg(long)]
        no_host: bool,
    },
    /// Which packages provide a soname or a file path (same as `fhskit locate`).
    Locate(LocateArgs),
}

/// Arguments of `locate`.
#[derive(Debug, Clone, Args)]
pub struct LocateArgs {
    /// A soname (libfoo.so.1), a file name, or an absolute path (/usr/bin/foo).
    pub query: String,
}

fn settings(common: &Common) -> Result<Settings> {
    let opts = LoadOptions {
        config_file: common.config.clone(),
        repos: common.repos.clone(),
        cache_dir: None,
        host_root: common.host_root.clone(),
        architectures: common.arch.clone(),
    };
    Ok(Settings::load(&opts)?)
}

fn require_repos(s: &Settings) -> Result<()> {
    if s.repositories.is_empty() {
        return Err(crate::hint::hinted(
            "no package repository is configured",
            format!(
                "add a [[pkgs.repository]] table (url, suite, components, architectures, keyring) to {}, \
                 or pass --repo '[signed-by=KEYRING] URL SUITE COMPONENT'",
                pkgs::config::default_config_file()
                    .map_or_else(|| "~/.config/fhskit/config.toml".into(), |p| p.display().to_string())
            ),
        ));
    }
    Ok(())
}

fn lock_cache(cache: &Cache) -> Result<CacheLock> {
    let path = cache.root().join("lock");
    Ok(cache.lock(|| eprintln!("waiting for another fhskit process to release {}", path.display()))?)
}

/// Runs `fhskit pkgs …`.
pub fn run(command: PkgsCommand, common: Common) -> Result<ExitCode> {
    let s = settings(&common)?;
    require_repos(&s)?;
    let cache = Cache::new(&s.cache_dir);
    match command {
        PkgsCommand::Update => update(&s, &cache, &common),
        PkgsCommand::Search { pattern } => search(&s, &cache, &common, &pattern),
        PkgsCommand::Show { package } => show(&s, &cache, &common, &package),
        PkgsCommand::Resolve { packages, lock } => resolve_cmd(&s, &cache, &common, &packages, &lock),
        PkgsCommand::Fetch { packages, lock, into, store, add_root, download_only, jobs, no_host } => fetch(
            &s,
            &cache,
            &common,
            FetchArgs { packages, lock, into, store, add_root, download_only, jobs, no_host },
        ),
        PkgsCommand::Locate(args) => locate_with(&s, &cache, &common, &args),
    }
}

/// Runs `fhskit locate`.
pub fn locate(args: LocateArgs, common: Common) -> Result<ExitCode> {
    let s = settings(&common)?;
    require_repos(&s)?;
    let cache = Cache::new(&s.cache_dir);
    locate_with(&s, &cache, &common, &args)
}

fn update(s: &Settings, cache: &Cache, common: &Common) -> Result<ExitCode> {
    let _lock = lock_cache(cache)?;
    let http = Http::new()?;
    let now = pkgs::release::now();
    let mut summaries = Vec::new();
    for repo in &s.repositories {
        let keyring = Keyring::load(&repo.keys, &s.host_root)
            .with_context(|| format!("cannot update {}", repo.label()))?;
        let summary = pkgs::index::update(&http, cache, repo, &keyring, now)
            .with_context(|| format!("cannot update {}", repo.label()))?;
        for w in &summary.warnings {
            eprintln!("warning: {w}");
        }
        if !common.json {
            if summary.changed {
                println!(
                    "{}: {} package index(es), {} soname entries, {} kB downloaded",
                    summary.repository,
                    summary.packages_files,
                    summary.soname_entries,
                    summary.downloaded_bytes.div_ceil(1024)
                );
            } else {
                println!("{}: up to date", summary.repository);
            }
        }
        summaries.push(summary);
    }
    if common.json {
        crate::output::json(&mut std::io::stdout().lock(), &summaries)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn universe(s: &Settings, cache: &Cache) -> Result<Universe> {
    Ok(Universe::load(cache, &s.repositories)?)
}

fn search(s: &Settings, cache: &Cache, common: &Common, pattern: &str) -> Result<ExitCode> {
    let u = universe(s, cache)?;
    let found = u.search(pattern);
    if common.json {
        crate::output::json(&mut std::io::stdout().lock(), &found)?;
    } else {
        for p in &found {
            println!("{} {} {}  {}", p.name, p.version, p.architecture, p.description);
        }
    }
    Ok(if found.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn show(s: &Settings, cache: &Cache, common: &Common, package: &str) -> Result<ExitCode> {
    let u = universe(s, cache)?;
    let req = Request::parse(package)?;
    let mut found: Vec<&pkgs::packages::Package> = u
        .named(&req.name)
        .iter()
        .map(|&i| &u.packages[i])
        .filter(|p| req.arch.as_ref().is_none_or(|a| *a == p.architecture))
        .filter(|p| req.version.as_ref().is_none_or(|v| *v == p.version))
        .collect();
    found.sort_by(|a, b| a.architecture.cmp(&b.architecture).then_with(|| b.version.cmp(&a.version)));
    if found.is_empty() {
        bail!("no package {package} in the configured repositories");
    }
    if common.json {
        crate::output::json(&mut std::io::stdout().lock(), &found)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (n, p) in found.iter().enumerate() {
        if n > 0 {
            println!();
        }
        let repo = u.repository_of(p);
        println!("Package: {}\nVersion: {}\nArchitecture: {}", p.name, p.version, p.architecture);
        let ma = serde_json::to_value(p.multi_arch)?;
        println!("Multi-Arch: {}", ma.as_str().unwrap_or("no"));
        for (k, v) in [
            ("Pre-Depends", &p.pre_depends_text),
            ("Depends", &p.depends_text),
            ("Provides", &p.provides_text),
            ("Section", &p.section),
            ("Priority", &p.priority),
        ] {
            if !v.is_empty() {
                println!("{k}: {v}");
            }
        }
        println!("Repository: {} {} {}", repo.url, repo.suite, p.component);
        println!(
            "Filename: {}\nSize: {}\nSHA256: {}\nDescription: {}",
            p.filename, p.size, p.sha256, p.description
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_requests(packages: &[String]) -> Result<Vec<Request>> {
    Ok(packages.iter().map(|p| Request::parse(p)).collect::<Result<_, _>>()?)
}

fn resolve_to_lock(s: &Settings, cache: &Cache, packages: &[String], pins: Option<&Lock>) -> Result<Lock> {
    let u = universe(s, cache)?;
    let requests = parse_requests(packages)?;
    let native = s.architectures.first().cloned().unwrap_or_else(|| pkgs::config::native_arch().to_owned());
    let r = resolve(&u, &requests, &native, pins)?;
    Ok(r.to_lock(&u, &requests))
}

fn resolve_cmd(
    s: &Settings,
    cache: &Cache,
    common: &Common,
    packages: &[String],
    lock_path: &std::path::Path,
) -> Result<ExitCode> {
    let previous = if lock_path.exists() { Some(Lock::read(lock_path)?) } else { None };
    let lock = resolve_to_lock(s, cache, packages, previous.as_ref())?;
    lock.write(lock_path)?;
    if common.json {
        crate::output::json(&mut std::io::stdout().lock(), &lock)?;
    } else {
        for p in &lock.packages {
            println!("{} {}", p.key(), p.version);
        }
        eprintln!("wrote {} ({} packages)", lock_path.display(), lock.packages.len());
    }
    Ok(ExitCode::SUCCESS)
}

struct FetchArgs {
    packages: Vec<String>,
    lock: Option<PathBuf>,
    into: Option<PathBuf>,
    store: Option<String>,
    add_root: Option<PathBuf>,
    download_only: bool,
    jobs: usize,
    no_host: bool,
}

fn fetch(s: &Settings, cache: &Cache, common: &Common, args: FetchArgs) -> Result<ExitCode> {
    let lock = if args.packages.is_empty() {
        let path = args.lock.clone().unwrap_or_else(|| PathBuf::from("fhskit.lock"));
        Lock::read(&path).map_err(|e| {
            crate::hint::hinted(
                e.to_string(),
                "name packages to fetch, or run 'fhskit pkgs resolve PACKAGE…' first",
            )
        })?
    } else {
        let pins = match &args.lock {
            Some(p) if p.exists() => Some(Lock::read(p)?),
            _ => None,
        };
        resolve_to_lock(s, cache, &args.packages, pins.as_ref())?
    };
    let _guard = lock_cache(cache)?;
    let http = Http::new()?;
    let bar = crate::realise::Bar::default();
    if args.download_only {
        let items: Vec<pkgs::fetch::FetchItem> = lock
            .packages
            .iter()
            .map(|p| pkgs::fetch::FetchItem {
                label: p.key(),
                url: p.url(),
                size: p.size,
                sha256: p.sha256.clone(),
            })
            .collect();
        let paths = pkgs::fetch::fetch_all(&http, cache, &items, args.jobs, &bar)?;
        let rows: Vec<serde_json::Value> = lock
            .packages
            .iter()
            .zip(&paths)
            .map(|(p, path)| serde_json::json!({"package": p.key(), "version": p.version, "deb": path}))
            .collect();
        if common.json {
            crate::output::json(&mut std::io::stdout().lock(), &rows)?;
        } else {
            for (p, path) in lock.packages.iter().zip(&paths) {
                println!("{} {} {}", p.key(), p.version, path.display());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let native = s.architectures.first().cloned().unwrap_or_else(|| pkgs::config::native_arch().to_owned());
    let opts = pkgs::realise::RealiseOptions {
        jobs: args.jobs,
        host_root: (!args.no_host && s.use_host_packages).then(|| s.host_root.clone()),
        native_arch: native,
    };
    let realised = match &args.into {
        Some(into) => {
            let mut target = pkgs::realise::DirTarget { dir: into.clone() };
            pkgs::realise::realise(&http, cache, &lock, &opts, &bar, &mut target)?
        }
        None => {
            let config = store::StoreConfig::from_arg(args.store.as_deref())?;
            let dir = config.physical_store_dir();
            let store = store::Store::open(config)
                .with_context(|| format!("cannot open the store at {}", dir.display()))?;
            let mut target = crate::realise::StoreTarget::new(&store);
            let realised = pkgs::realise::realise(&http, cache, &lock, &opts, &bar, &mut target)?;
            if let Some(dir) = &args.add_root {
                add_roots(&store, dir, &realised)?;
            }
            realised
        }
    };
    if common.json {
        crate::output::json(&mut std::io::stdout().lock(), &realised)?;
    } else {
        for r in &realised {
            println!(
                "{} {} {}{}",
                r.package,
                r.version,
                r.location,
                if r.from_host { " (from host)" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Links `dir/<store name>` to each realised store path and registers the links as GC roots.
fn add_roots(
    store: &store::Store,
    dir: &std::path::Path,
    realised: &[pkgs::realise::Realised],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for r in realised {
        let path = store.parse_path(&r.location)?;
        let link = dir.join(path.name());
        store.add_root(&link, &path).with_context(|| format!("cannot add the root {}", link.display()))?;
    }
    Ok(())
}

fn locate_with(s: &Settings, cache: &Cache, common: &Common, args: &LocateArgs) -> Result<ExitCode> {
    let arch = common.arch.first().cloned().unwrap_or_else(|| {
        s.architectures.first().cloned().unwrap_or_else(|| pkgs::config::native_arch().to_owned())
    });
    let query = args.query.as_str();
    let is_path = query.contains('/');
    let mut rows = Vec::new();
    let mut all_hits = Vec::new();
    for repo in &s.repositories {
        let idx = SuiteIndex::open(cache, repo)?;
        let Some(index) = idx.soname_index(&arch)? else { continue };
        for hit in index.lookup(query)? {
            rows.push(serde_json::json!({
                "repository": repo.url, "suite": repo.suite, "path": format!("/{}", hit.path),
                "packages": hit.packages, "standard": hit.standard,
            }));
            all_hits.push(hit);
        }
    }
    let basename = query.rsplit('/').next().unwrap_or(query);
    let preferred = if is_path {
        let mut c: Vec<String> = all_hits.iter().flat_map(|h| h.packages.clone()).collect();
        c.sort();
        c.dedup();
        pkgs::soname::rank_providers(basename, &mut c);
        c.into_iter().next()
    } else {
        pkgs::soname::preferred(basename, &all_hits)
    };
    if common.json {
        let out =
            serde_json::json!({"query": query, "architecture": arch, "preferred": preferred, "hits": rows});
        crate::output::json(&mut std::io::stdout().lock(), &out)?;
        return Ok(if all_hits.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS });
    }
    if all_hits.is_empty() {
        bail!("no package in the configured repositories ships {query} for {arch}");
    }
    // Preferred provider first, then the rest in index order, like apt-file's "package: path".
    let mut lines: Vec<(bool, String)> = Vec::new();
    for h in &all_hits {
        for p in &h.packages {
            let line = format!("{p}: /{}", h.path);
            if !lines.iter().any(|(_, l)| *l == line) {
                lines.push((Some(p) == preferred.as_ref() && (h.standard || is_path), line));
            }
        }
    }
    lines.sort_by_key(|(pref, _)| !pref);
    for (_, l) in lines {
        println!("{l}");
    }
    Ok(ExitCode::SUCCESS)
}
