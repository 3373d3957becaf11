//! `fhskit eval` and `fhskit instantiate`: `nix-instantiate` over the `eval` crate, with its options and output
//! (`instantiate --eval` is `eval`). Evaluation runs on a thread with a large stack; store objects (`.drv` files,
//! `toFile`, `path`, fetches) go into the fhskit store through `eval_store::StoreIo`, and store paths are computed
//! for that store's directory. `--store dummy://` computes `/nix/store` paths and can write nothing (Nix's test
//! store).

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context as _;
use eval::value::{Attr, Attrs, Env};
use eval::{EvalError, Evaluator, Settings, Value};
use store::StoreConfig;

use crate::eval_store::StoreIo;

/// What to evaluate and how: the options `instantiate`, `eval` and `build` share.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Files to evaluate (a directory means its default.nix, `-` standard input, `<name>` a search path entry,
    /// a URL a tarball); with -E, expressions. None: ./default.nix.
    pub args: Vec<String>,
    /// The arguments are expressions, not files.
    #[arg(short = 'E', long = "expr")]
    pub expr: bool,
    /// Select this attribute path of the result (repeatable; `a."b.c".0` quotes a name and indexes a list).
    #[arg(short = 'A', long = "attr")]
    pub attr: Vec<String>,
    /// Pass `NAME = EXPR` to top-level functions.
    #[arg(long = "arg", num_args = 2, value_names = ["NAME", "EXPR"])]
    pub arg: Vec<String>,
    /// Pass `NAME = "STRING"` to top-level functions.
    #[arg(long = "argstr", num_args = 2, value_names = ["NAME", "STRING"])]
    pub argstr: Vec<String>,
    /// Add a search path entry (`PATH`, `PREFIX=PATH`, a tarball URL or `channel:NAME`) before those of NIX_PATH.
    #[arg(short = 'I', long = "include")]
    pub include: Vec<String>,
    /// Show the trace of enclosing calls on errors.
    #[arg(long = "show-trace", overrides_with = "no_show_trace")]
    pub show_trace: bool,
    #[arg(long = "no-show-trace", hide = true)]
    pub no_show_trace: bool,
    /// The store (a base directory, `local?root=DIR` for Nix's `/nix/store` paths, or `dummy://` to write
    /// nothing; default: FHSKIT_STORE, else the per-user store).
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// Calls nested deeper than this fail with "stack overflow" (a setting, as `--option max-call-depth N`).
    #[arg(long = "max-call-depth", value_name = "N")]
    pub max_call_depth: Option<String>,
    /// Absolute (`/…`) and home (`~/…`) path literals: ignore, warn or fatal.
    #[arg(long = "lint-absolute-path-literals", value_name = "LEVEL")]
    pub lint_absolute_path_literals: Option<String>,
    /// Relative path literals without `./`: ignore, warn or fatal.
    #[arg(long = "lint-short-path-literals", value_name = "LEVEL")]
    pub lint_short_path_literals: Option<String>,
    /// Unquoted URL literals: ignore, warn or fatal.
    #[arg(long = "lint-url-literals", value_name = "LEVEL")]
    pub lint_url_literals: Option<String>,
    /// Make `builtins.warn` an error.
    #[arg(long = "abort-on-warn")]
    pub abort_on_warn: bool,
    /// Allow impure operations (the default; accepted as Nix accepts it).
    #[arg(long)]
    pub impure: bool,
    /// Pure evaluation: no `currentTime`, `currentSystem` or `getEnv`.
    #[arg(long = "pure-eval")]
    pub pure_eval: bool,
    /// Print `builtins.traceVerbose` messages.
    #[arg(long = "trace-verbose")]
    pub trace_verbose: bool,
    /// Enable experimental features (`pipe-operators`, `parse-toml-timestamps`, `flakes`).
    #[arg(long = "extra-experimental-features", value_name = "FEATURES")]
    pub extra_experimental_features: Vec<String>,
    #[arg(long = "experimental-features", value_name = "FEATURES", hide = true)]
    pub experimental_features: Option<String>,
    /// Seconds a downloaded tarball (a search path URL, `fetchTarball` without a hash) is used without asking
    /// the server again (default 3600).
    #[arg(long = "tarball-ttl", value_name = "SECONDS")]
    pub tarball_ttl: Option<String>,
    /// Allow the experimental pipe operators `|>` and `<|`.
    #[arg(long = "pipe-operators")]
    pub pipe_operators: bool,
}

/// Evaluation options from command-line words (`["FILE", "-A", "x"]`), for commands that evaluate on a user's
/// behalf with fewer options of their own.
pub fn common_args(words: &[String]) -> anyhow::Result<CommonArgs> {
    use clap::Parser;
    #[derive(Parser)]
    struct Words {
        #[command(flatten)]
        common: CommonArgs,
    }
    let argv = std::iter::once("fhskit".to_owned()).chain(words.iter().cloned());
    Ok(Words::try_parse_from(argv).context("invalid evaluation options")?.common)
}

/// The options of `nix-instantiate` (for `eval` and `instantiate`).
#[derive(Debug, Clone, clap::Args)]
pub struct NixArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only evaluate and print the value (what `fhskit eval` does).
    #[arg(long = "eval", visible_alias = "eval-only")]
    pub eval: bool,
    /// Evaluate the result completely (otherwise unevaluated parts print as `<CODE>`).
    #[arg(long)]
    pub strict: bool,
    /// Print the result as one JSON document (paths are copied to the store and printed as store paths).
    #[arg(long, conflicts_with_all = ["xml", "raw"])]
    pub json: bool,
    /// Print the result as XML.
    #[arg(long, conflicts_with = "raw")]
    pub xml: bool,
    /// Print the result, which must be a string (or coercible to one), as it is, without a newline.
    #[arg(long)]
    pub raw: bool,
    /// Leave source positions out of the XML output.
    #[arg(long = "no-location")]
    pub no_location: bool,
    /// Print where each argument (`nixpkgs`, `nixpkgs/lib`, …) is found in the search path, and nothing else.
    #[arg(long = "find-file")]
    pub find_file: bool,
    /// With --eval, still write what the evaluation adds to the store (`toFile` results, copied paths).
    #[arg(long = "read-write-mode")]
    pub read_write: bool,
    /// Compute and print `.drv` paths without writing anything to the store.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Keep the `.drv` files alive with GC roots: a symlink LINK to the first, LINK-2, LINK-3, … to the others.
    #[arg(long = "add-root", value_name = "LINK")]
    pub add_root: Option<PathBuf>,
    /// Accepted for compatibility (roots are always indirect).
    #[arg(long, hide = true)]
    pub indirect: bool,
    /// Nix's build timeout (the `timeout` setting): instantiation builds nothing, so, as with `nix-instantiate`,
    /// it is accepted (nixpkgs' `lib/tests/modules.sh` passes `--timeout 1`) and has no effect.
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub timeout: Option<u64>,
    /// Compute store paths for this store directory instead of the store's (e.g. `/nix/store` to print Nix's
    /// paths); nothing can then be added to the store.
    #[arg(long = "store-dir", value_name = "DIR")]
    pub store_dir: Option<String>,
}

/// Evaluates for `fhskit build`: the derivations the arguments name, each with the output its value selects
/// (`outputName`), their `.drv` files written to the store. `Err(Ok(message))` is an evaluation error in Nix's
/// format (printed as it is, exit code 1).
pub fn instantiate_for_build(
    common: CommonArgs,
) -> Result<Vec<(String, String)>, Result<String, anyhow::Error>> {
    let args = NixArgs {
        common,
        eval: false,
        strict: false,
        json: false,
        xml: false,
        raw: false,
        no_location: false,
        find_file: false,
        read_write: false,
        dry_run: false,
        add_root: None,
        indirect: false,
        timeout: None,
        store_dir: None,
    };
    match run(args) {
        Ok(out) => Ok(out.drvs),
        Err(EvalFailure::Eval(msg)) => Err(Ok(msg)),
        Err(EvalFailure::Other(e)) => Err(Err(e)),
    }
}

pub fn run_eval(mut args: NixArgs) -> anyhow::Result<ExitCode> {
    args.eval = true;
    run_instantiate(args)
}

pub fn run_instantiate(args: NixArgs) -> anyhow::Result<ExitCode> {
    if args.store_dir.is_some() && !args.eval {
        anyhow::bail!("--store-dir is only for --eval: .drv files must be written to the store they name");
    }
    let store_arg = args.common.store.clone();
    let add_root = args.add_root.clone();
    let out = match run(args) {
        Ok(out) => out,
        Err(EvalFailure::Eval(msg)) => {
            eprintln!("{msg}");
            return Ok(ExitCode::from(1));
        }
        Err(EvalFailure::Other(e)) => return Err(e),
    };
    let Output { text, drvs } = out;
    let Some(link) = add_root.filter(|_| !drvs.is_empty()) else {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    };
    // As Nix does, each root's path is printed in place of its derivation's.
    let link = std::path::absolute(&link).with_context(|| format!("resolving {}", link.display()))?;
    let store = store::Store::open(StoreConfig::from_arg(store_arg.as_deref())?)?;
    for (i, (drv, output)) in drvs.iter().enumerate() {
        let link = if i == 0 { link.clone() } else { PathBuf::from(format!("{}-{}", link.display(), i + 1)) };
        store
            .add_root(&link, &store.parse_path(drv)?)
            .with_context(|| format!("adding the GC root {}", link.display()))?;
        println!("{}{}", link.display(), output_suffix(output));
    }
    Ok(ExitCode::SUCCESS)
}

/// Nix prints `!NAME` after a derivation whose selected output is not `out`.
fn output_suffix(output: &str) -> String {
    if output == "out" { String::new() } else { format!("!{output}") }
}

enum EvalFailure {
    /// An evaluation error, rendered as Nix renders it.
    Eval(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for EvalFailure {
    fn from(e: anyhow::Error) -> EvalFailure {
        EvalFailure::Other(e)
    }
}

/// What a run prints, and the derivations (path, output) it instantiated.
struct Output {
    text: String,
    drvs: Vec<(String, String)>,
}

fn print_trace(msg: &str) {
    eprintln!("{}", crate::output::filter_escapes(msg, crate::output::colour_on_stderr()));
}

/// The evaluation settings the arguments ask for (before the store decides the store directory).
fn settings(args: &NixArgs, cwd: &Path) -> anyhow::Result<Settings> {
    let mut s = Settings {
        current_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        read_only: (args.eval && !args.read_write) || args.dry_run,
        ..Settings::default()
    };
    let set = |s: &mut Settings, name: &str, value: &str| -> anyhow::Result<()> {
        s.set(name, value).map(|_| ()).map_err(|msg| anyhow::anyhow!(msg))
    };
    if let Some(url) = std::env::var_os("FHSKIT_CHANNEL_URL") {
        set(&mut s, "channel-url", &url.to_string_lossy())?;
    }
    // `--option NAME VALUE` is global to fhskit: names the evaluator does not know are other parts' settings.
    let options = crate::substitute::options();
    for (name, value) in options {
        set(&mut s, name, value)?;
    }
    if let Some(v) = &args.common.experimental_features {
        set(&mut s, "experimental-features", v)?;
    }
    for v in &args.common.extra_experimental_features {
        set(&mut s, "extra-experimental-features", v)?;
    }
    if args.common.pipe_operators {
        set(&mut s, "extra-experimental-features", "pipe-operators")?;
    }
    let flags = [
        ("max-call-depth", &args.common.max_call_depth),
        ("lint-absolute-path-literals", &args.common.lint_absolute_path_literals),
        ("lint-short-path-literals", &args.common.lint_short_path_literals),
        ("lint-url-literals", &args.common.lint_url_literals),
        ("tarball-ttl", &args.common.tarball_ttl),
    ];
    for (name, value) in flags {
        if let Some(v) = value {
            set(&mut s, name, v)?;
        }
    }
    if args.common.abort_on_warn || std::env::var_os("NIX_ABORT_ON_WARN").is_some_and(|v| v == "1") {
        set(&mut s, "abort-on-warn", "true")?;
    }
    if args.common.pure_eval {
        set(&mut s, "pure-eval", "true")?;
    }
    if args.common.impure {
        set(&mut s, "pure-eval", "false")?;
    }
    if args.common.trace_verbose {
        set(&mut s, "trace-verbose", "true")?;
    }
    // The search path: -I entries, then NIX_PATH (unless `nix-path` was set), each relative to the working
    // directory unless it is absolute or a URL.
    let mut entries: Vec<(String, String)> =
        args.common.include.iter().map(|e| eval::settings::split_entry(e)).collect();
    let from_option = std::mem::take(&mut s.nix_path);
    if options.iter().any(|(name, _)| name == "nix-path") {
        entries.extend(from_option);
    } else {
        if let Ok(np) = std::env::var("NIX_PATH") {
            entries.extend(
                eval::search_path::parse_nix_path(&np).iter().map(|e| eval::settings::split_entry(e)),
            );
        }
        entries.extend(from_option);
    }
    s.nix_path = entries
        .into_iter()
        .filter(|(_, path)| !path.is_empty())
        .map(|(prefix, path)| {
            let is_url = path.contains("://") || path.starts_with("channel:") || path.starts_with("flake:");
            let path = if is_url || path.starts_with('/') {
                path
            } else {
                cwd.join(&path).to_string_lossy().into_owned()
            };
            (prefix, path)
        })
        .collect();
    Ok(s)
}

/// Evaluates and returns what to print.
fn run(args: NixArgs) -> Result<Output, EvalFailure> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut settings = settings(&args, &cwd)?;
    let reads_stdin = args.common.args.iter().any(|a| a == "-") && !args.common.expr;
    let stdin_text = if reads_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading standard input")?;
        Some(s)
    } else {
        None
    };
    let dummy =
        args.common.store.as_deref() == Some("dummy://") || args.common.store.as_deref() == Some("dummy");
    let config = if dummy {
        None
    } else {
        Some(StoreConfig::from_arg(args.common.store.as_deref()).map_err(anyhow::Error::from)?)
    };
    let store_dir = match (&args.store_dir, &config) {
        (Some(dir), _) => dir.clone(),
        (None, Some(config)) => config.store_dir.to_string(),
        (None, None) => "/nix/store".to_string(),
    };
    settings.store_dir = store_dir.trim_end_matches('/').to_string();
    // fhskit's own package set answers `<nixpkgs>` when no entry of the search path does (after every entry, and
    // not listed in `builtins.nixPath`, which Nix's language tests count).
    // An entry that names `nixpkgs` itself (even one that cannot be downloaded and is ignored) means the user chose
    // another package set: failing then is Nix's behaviour, not falling back to ours.
    let names_nixpkgs =
        settings.nix_path.iter().any(|(prefix, _)| prefix == "nixpkgs" || prefix.starts_with("nixpkgs/"));
    if args.store_dir.is_none() && !names_nixpkgs {
        match crate::nixpkgs::embedded() {
            Ok(path) => settings.fallback_nix_path.push(("nixpkgs".to_string(), path)),
            Err(e) => tracing::warn!("fhskit's package set is not available as <nixpkgs>: {e:#}"),
        }
    }
    let show_trace = args.common.show_trace && !args.common.no_show_trace;
    let outcome = eval::with_big_stack(move || -> Result<Output, String> {
        let io = StoreIo::new(config, print_trace);
        let mut ev = Evaluator::new(Box::new(io), settings);
        let out = evaluate(&mut ev, &args, stdin_text.as_deref(), &cwd).map_err(|e| e.render(show_trace));
        finish(ev);
        out
    })
    .context("starting the evaluation thread")?;
    // The message may quote evaluated strings, escape sequences included; every caller prints it on stderr.
    outcome.map_err(|msg| {
        EvalFailure::Eval(crate::output::filter_escapes(&msg, crate::output::colour_on_stderr()).into_owned())
    })
}

/// Ends a run without freeing what the evaluator holds: the process exits after printing, and freeing every
/// syntax tree, thunk and set of the run would cost as much as a tenth of a run over a large file. The store
/// handle is still dropped, so that its temporary roots and scratch directories are removed.
fn finish(mut ev: Evaluator) {
    drop(std::mem::replace(&mut ev.io, Box::new(eval::FsIo::new(PathBuf::new(), "/nix/store"))));
    std::mem::forget(ev);
}

/// Evaluates what the arguments name and renders it as `nix-instantiate` does.
fn evaluate(
    ev: &mut Evaluator,
    args: &NixArgs,
    stdin_text: Option<&str>,
    cwd: &Path,
) -> eval::Result<Output> {
    let cwd_s = cwd.to_string_lossy().into_owned();
    let mut out = Output { text: String::new(), drvs: Vec::new() };
    if args.find_file {
        for name in &args.common.args {
            let found = ev.find_file(name, eval::source::Pos::none())?;
            out.text.push_str(&found);
            out.text.push('\n');
        }
        return Ok(out);
    }
    let auto_args = auto_args(ev, args, &cwd_s)?;
    if let Some(text) = stdin_text {
        let e = ev.compile("«stdin»", text, &cwd_s, None)?;
        let root = ev.eval(&e, &Rc::new(Env::root()))?;
        process(ev, args, &auto_args, root, &mut out)?;
    }
    let mut sources: Vec<&str> =
        args.common.args.iter().map(|s| s.as_str()).filter(|a| args.common.expr || *a != "-").collect();
    if sources.is_empty() && !args.common.expr && stdin_text.is_none() {
        sources.push("./default.nix");
    }
    for src in sources {
        let root = if args.common.expr {
            ev.eval_str(src, &cwd_s)?
        } else {
            let file = file_arg(ev, src, cwd)?;
            ev.eval_file(&file)?
        };
        process(ev, args, &auto_args, root, &mut out)?;
    }
    Ok(out)
}

/// Selects each `-A` path of one evaluated argument and prints it (`--eval`) or its derivations.
fn process(
    ev: &mut Evaluator,
    args: &NixArgs,
    auto_args: &Attrs,
    root: Value,
    out: &mut Output,
) -> eval::Result<()> {
    let paths: Vec<&str> = if args.common.attr.is_empty() {
        vec![""]
    } else {
        args.common.attr.iter().map(|s| s.as_str()).collect()
    };
    // Nix calls the expression's function (nixpkgs' `{ config ? {}, … }: …`) again for each path, so each `-A`
    // evaluates a package set of its own and keeps it. The values are the same every time, so with several paths
    // it is called once and every path selects from the one result: a trace it prints appears once.
    let called = paths.len() > 1 && paths.iter().all(|p| !p.is_empty());
    let root = if called { auto_call(ev, auto_args, root)? } else { root };
    for path in paths {
        let v = find_along_attr_path(ev, auto_args, root.clone(), path, called)?;
        // The value is the whole result graph, and the process ends after printing it (see `finish`).
        let v = ManuallyDrop::new(v);
        if args.eval {
            print_value(ev, args, auto_args, &v, &mut out.text)?;
        } else {
            // A derivation reached twice in one search is printed once (Nix's `getDerivations` per path).
            get_derivations(ev, auto_args, &v, "", &mut std::collections::HashSet::new(), out)?;
        }
    }
    Ok(())
}

/// A file argument: `<name>` is looked up in the search path, a URL is fetched as a tarball, anything else is a
/// path relative to the working directory; a directory means its `default.nix`.
fn file_arg(ev: &mut Evaluator, arg: &str, cwd: &Path) -> eval::Result<String> {
    if let Some(name) = arg.strip_prefix('<').and_then(|a| a.strip_suffix('>')) {
        return ev.find_file(name, eval::source::Pos::none());
    }
    if arg.contains("://") || arg.starts_with("channel:") {
        return ev.fetch_search_path_url(arg, eval::source::Pos::none());
    }
    Ok(eval::compile::canon_path(&cwd.join(arg).to_string_lossy()))
}

/// The `--arg`/`--argstr` set: `--arg` expressions are evaluated lazily, relative to the working directory.
fn auto_args(ev: &mut Evaluator, args: &NixArgs, cwd: &str) -> eval::Result<Attrs> {
    let mut entries = Vec::new();
    for pair in args.common.arg.chunks(2) {
        let e = Rc::new(ev.compile("«string»", &pair[1], cwd, None)?);
        let value = ev.thunk(&e, &Rc::new(Env::root()));
        entries.push(Attr { name: eval::sym::Sym::new(&pair[0]), value, pos: Default::default() });
    }
    for pair in args.common.argstr.chunks(2) {
        entries.push(Attr {
            name: eval::sym::Sym::new(&pair[0]),
            value: Value::str(pair[1].clone()),
            pos: Default::default(),
        });
    }
    Ok(Attrs::from_unsorted(entries))
}

/// Nix's `autoCallFunction`: a function with formals is called with the automatic arguments it accepts (all of
/// them with `...`) and its defaults; a set with `__functor` is called through it; anything else is itself.
fn auto_call(ev: &mut Evaluator, auto_args: &Attrs, v: Value) -> eval::Result<Value> {
    let f = ev.force(&v)?;
    if let Value::Attrs(a) = &f
        && let Some(functor) = a.get_str("__functor")
    {
        let functor = functor.clone();
        let g = ev.call_n(&functor, std::slice::from_ref(&f), Default::default())?;
        return auto_call(ev, auto_args, g);
    }
    let Value::Lambda(c) = &f else { return Ok(f) };
    let eval::compile::Param::Formals { formals, ellipsis, .. } = &c.def.param else { return Ok(f) };
    let entries: Vec<Attr> = if *ellipsis {
        auto_args.entries.clone()
    } else {
        let mut picked = Vec::new();
        for (name, default) in formals {
            match auto_args.get_attr(*name) {
                Some(a) => picked.push(a.clone()),
                None if default.is_none() => {
                    return Err(EvalError::eval(
                        format!(
                            "cannot evaluate a function that has an argument without a value ('{name}')\n\
                             Nix attempted to evaluate a function as a top level expression; in\n\
                             this case it must have its arguments supplied either by default\n\
                             values, or passed explicitly with '--arg' or '--argstr'. See\n\
                             https://nix.dev/manual/nix/stable/language/constructs.html#functions."
                        ),
                        c.def.pos,
                    ));
                }
                None => {}
            }
        }
        picked
    };
    let arg = Value::attrs(Attrs::from_unsorted(entries));
    ev.call(f, arg, Default::default())
}

/// `a.b."c.d".0` as Nix splits it: at dots outside double quotes.
fn parse_attr_path(path: &str) -> eval::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' => out.push(std::mem::take(&mut cur)),
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => cur.push(c),
                    None => {
                        return Err(EvalError::eval(
                            format!("missing closing quote in selection path '{path}'"),
                            Default::default(),
                        ));
                    }
                }
            },
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Nix's `findAlongAttrPath`: each step calls a function value automatically, then selects a name or a list index.
fn find_along_attr_path(
    ev: &mut Evaluator,
    auto_args: &Attrs,
    mut v: Value,
    path: &str,
    mut called: bool,
) -> eval::Result<Value> {
    let err = |msg: String| EvalError::eval(msg, Default::default());
    for part in parse_attr_path(path)? {
        // `called`: the caller has called the root already.
        let cur = if std::mem::take(&mut called) { v } else { auto_call(ev, auto_args, v)? };
        v = match part.parse::<u32>() {
            Err(_) => {
                let Value::Attrs(a) = &cur else {
                    return Err(err(format!(
                        "the expression selected by the selection path '{path}' should be a set but is {}",
                        cur.show_type()
                    )));
                };
                if part.is_empty() {
                    return Err(err(format!("empty attribute name in selection path '{path}'")));
                }
                match a.get(eval::sym::Sym::new(&part)) {
                    Some(x) => x.clone(),
                    None => {
                        return Err(err(format!("attribute '{part}' in selection path '{path}' not found")));
                    }
                }
            }
            Ok(i) => {
                let Value::List(l) = &cur else {
                    return Err(err(format!(
                        "the expression selected by the selection path '{path}' should be a list but is {}",
                        cur.show_type()
                    )));
                };
                match l.get(i as usize) {
                    Some(x) => x.clone(),
                    None => {
                        return Err(err(format!(
                            "list index {i} in selection path '{path}' is out of range"
                        )));
                    }
                }
            }
        };
    }
    ev.force(&v)
}

/// `--eval` output: the value (forced completely with --strict), as JSON, XML or raw text when asked.
fn print_value(
    ev: &mut Evaluator,
    args: &NixArgs,
    auto_args: &Attrs,
    v: &Value,
    out: &mut String,
) -> eval::Result<()> {
    let v = if auto_args.is_empty() { v.clone() } else { auto_call(ev, auto_args, v.clone())? };
    let v = ManuallyDrop::new(v);
    let pos = eval::source::Pos::none();
    if args.raw {
        let s = ev.coerce_to_string(&v, pos, eval::eval::Coerce { more: true, copy: true })?;
        out.push_str(&s.s);
    } else if args.json {
        let mut ctx = Default::default();
        let s = eval::builtins::json::to_json(ev, &v, pos, &mut ctx, true)?;
        out.push_str(&s);
        out.push('\n');
    } else if args.xml {
        let mut ctx = Default::default();
        out.push_str("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n");
        eval::builtins::json::to_xml(ev, &v, pos, 1, !args.no_location, args.strict, out, &mut ctx)?;
        out.push_str("</expr>\n");
    } else {
        if args.strict {
            ev.force_deep(&v)?;
        }
        out.push_str(&eval::print::print_value(&v));
        out.push('\n');
    }
    Ok(())
}

/// Nix's `getDerivations`: a derivation is itself; a set is searched for derivations in its attributes (in name
/// order, names that are identifiers only), recursing into a set below the top only if it says
/// `recurseForDerivations = true`; a list is searched element by element. Functions are called automatically at
/// every level, and a derivation reached twice is printed once.
fn get_derivations(
    ev: &mut Evaluator,
    auto_args: &Attrs,
    v: &Value,
    path: &str,
    done: &mut std::collections::HashSet<usize>,
    out: &mut Output,
) -> eval::Result<()> {
    let v = auto_call(ev, auto_args, v.clone())?;
    if !add_derivation(ev, &v, done, out)? {
        return Ok(());
    }
    match &v {
        Value::Attrs(a) => {
            let recurse = eval::sym::Sym::new("recurseForDerivations");
            for attr in &a.entries {
                if !is_drv_attr_name(attr.name.as_str()) {
                    continue;
                }
                let child = ev.force(&attr.value)?;
                let sub =
                    if path.is_empty() { attr.name.to_string() } else { format!("{path}.{}", attr.name) };
                if add_derivation(ev, &child, done, out)?
                    && let Value::Attrs(c) = &child
                    && let Some(r) = c.get(recurse)
                    && ev.force_bool(&r.clone(), Default::default())?
                {
                    get_derivations(ev, auto_args, &child, &sub, done, out)?;
                }
            }
        }
        Value::List(l) => {
            for (i, x) in l.iter().enumerate() {
                let child = ev.force(x)?;
                if add_derivation(ev, &child, done, out)? {
                    get_derivations(ev, auto_args, &child, &format!("{path}.{i}"), done, out)?;
                }
            }
        }
        _ => {
            return Err(EvalError::eval(
                "expression does not evaluate to a derivation (or a set or list of those)",
                Default::default(),
            ));
        }
    }
    Ok(())
}

/// Attribute names `getDerivations` looks at: `[A-Za-z_][A-Za-z0-9-_+]*`.
fn is_drv_attr_name(name: &str) -> bool {
    let mut cs = name.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'))
}

/// If `v` is a derivation, records it (once) and returns false; true means "not a derivation, look inside".
fn add_derivation(
    ev: &mut Evaluator,
    v: &Value,
    done: &mut std::collections::HashSet<usize>,
    out: &mut Output,
) -> eval::Result<bool> {
    let v = ev.force(v)?;
    let Value::Attrs(a) = &v else { return Ok(true) };
    if !ev.is_derivation(a)? {
        return Ok(true);
    }
    if !done.insert(Rc::as_ptr(a) as usize) {
        return Ok(false);
    }
    let drv_path = match a.get_str("drvPath") {
        Some(d) => ev.force_str(&d.clone(), Default::default())?,
        None => return Err(EvalError::eval("derivation lacks a 'drvPath' attribute", Default::default())),
    };
    let output = match a.get_str("outputName") {
        Some(o) => ev.force_str(&o.clone(), Default::default())?,
        None => String::new(),
    };
    if output.is_empty() {
        return Err(EvalError::eval(
            format!("derivation '{drv_path}' lacks an 'outputName' attribute"),
            Default::default(),
        ));
    }
    out.text.push_str(&format!("{drv_path}{}\n", output_suffix(&output)));
    out.drvs.push((drv_path, output));
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_paths_split_outside_quotes() {
        assert_eq!(parse_attr_path("a.\"b.c\".0").unwrap(), ["a", "b.c", "0"]);
        assert_eq!(parse_attr_path("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_attr_path("a..b").unwrap(), ["a", "", "b"]);
        assert!(parse_attr_path("a.\"b").is_err());
    }

    #[test]
    fn derivation_attribute_names() {
        assert!(is_drv_attr_name("hello-2_1+x"));
        assert!(!is_drv_attr_name("hello-2.1"));
        assert!(is_drv_attr_name("_x"));
        assert!(!is_drv_attr_name("1x"));
        assert!(!is_drv_attr_name("a.b"));
        assert!(!is_drv_attr_name(""));
    }
}
