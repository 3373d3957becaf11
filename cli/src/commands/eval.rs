//! `fhskit eval` and `fhskit instantiate`: the `nix-instantiate` front end over the `eval` crate. Evaluation runs
//! on a thread with a large stack; store objects (`.drv` files, `toFile`, `path`, fetches) go into the fhskit store
//! through `eval_store::StoreIo`, and store paths are computed for that store's directory.

use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use eval::{Evaluator, Settings, Value};
use store::StoreConfig;

use crate::eval_store::StoreIo;

/// Options shared by `eval` and `instantiate`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Evaluate this expression instead of a file.
    #[arg(short = 'E', long = "expr")]
    pub expr: Option<String>,
    /// The file to evaluate (a directory means its default.nix; `-` reads standard input).
    pub file: Option<PathBuf>,
    /// Select this attribute path of the result (repeatable).
    #[arg(short = 'A', long = "attr")]
    pub attr: Vec<String>,
    /// Pass `NAME = EXPR` to a top-level function.
    #[arg(long = "arg", num_args = 2, value_names = ["NAME", "EXPR"])]
    pub arg: Vec<String>,
    /// Pass `NAME = "STRING"` to a top-level function.
    #[arg(long = "argstr", num_args = 2, value_names = ["NAME", "STRING"])]
    pub argstr: Vec<String>,
    /// Add a search path entry (`PATH` or `PREFIX=PATH`) before those of NIX_PATH.
    #[arg(short = 'I', long = "include")]
    pub include: Vec<String>,
    /// Show the trace of enclosing calls on errors.
    #[arg(long = "show-trace")]
    pub show_trace: bool,
    /// The store (a base directory, or `local?root=DIR` for Nix's `/nix/store` paths; default: FHSKIT_STORE,
    /// else the per-user store).
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// Allow the experimental pipe operators `|>` and `<|`.
    #[arg(long = "pipe-operators")]
    pub pipe_operators: bool,
}

/// `fhskit eval` options.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Evaluate the result completely.
    #[arg(long)]
    pub strict: bool,
    /// Print the result as JSON.
    #[arg(long, conflicts_with = "xml")]
    pub json: bool,
    /// Print the result as XML.
    #[arg(long)]
    pub xml: bool,
    /// Compute store paths for this store directory instead of the store's (e.g. `/nix/store` to print Nix's
    /// paths); nothing can then be added to the store.
    #[arg(long = "store-dir", value_name = "DIR")]
    pub store_dir: Option<String>,
}

/// `fhskit instantiate` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InstantiateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Keep the `.drv` files alive with GC roots: a symlink LINK to the first, LINK-2, LINK-3, … to the others.
    #[arg(long = "add-root", value_name = "LINK")]
    pub add_root: Option<PathBuf>,
}

enum Mode {
    Eval {
        strict: bool,
        json: bool,
        xml: bool,
    },
    Instantiate,
    /// As `Instantiate`, each line `DRV!OUTPUT` with the output the value selects (`fhskit build`).
    Build,
}

pub fn run_eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let mode = Mode::Eval { strict: args.strict, json: args.json, xml: args.xml };
    match run(args.common, mode, args.store_dir) {
        Ok(out) => {
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => failed(e),
    }
}

pub fn run_instantiate(args: InstantiateArgs) -> anyhow::Result<ExitCode> {
    let store = args.common.store.clone();
    let drvs = match run(args.common, Mode::Instantiate, None) {
        Ok(drvs) => drvs,
        Err(e) => return failed(e),
    };
    let Some(link) = args.add_root else {
        print!("{drvs}");
        return Ok(ExitCode::SUCCESS);
    };
    // As Nix does, each root's path is printed in place of its derivation's.
    let link = std::path::absolute(&link).with_context(|| format!("resolving {}", link.display()))?;
    let store = store::Store::open(StoreConfig::from_arg(store.as_deref())?)?;
    for (i, drv) in drvs.lines().enumerate() {
        let link = if i == 0 { link.clone() } else { PathBuf::from(format!("{}-{}", link.display(), i + 1)) };
        store
            .add_root(&link, &store.parse_path(drv)?)
            .with_context(|| format!("adding the GC root {}", link.display()))?;
        println!("{}", link.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Evaluates for `fhskit build`: the derivations the arguments name, each with the output its value selects
/// (`outputName`), their `.drv` files written to the store. `Err(Ok(message))` is an evaluation error in Nix's
/// format (printed as it is, exit code 1).
/// Several `-A` select several values, as in nix-build.
pub fn instantiate_for_build(
    common: CommonArgs,
) -> Result<Vec<(String, String)>, Result<String, anyhow::Error>> {
    let runs: Vec<CommonArgs> = if common.attr.len() > 1 {
        common.attr.iter().map(|a| CommonArgs { attr: vec![a.clone()], ..common.clone() }).collect()
    } else {
        vec![common]
    };
    let mut out = Vec::new();
    for args in runs {
        match run(args, Mode::Build, None) {
            Ok(text) => out.extend(
                text.lines().filter_map(|l| l.rsplit_once('!').map(|(d, o)| (d.to_owned(), o.to_owned()))),
            ),
            Err(EvalFailure::Eval(msg)) => return Err(Ok(msg)),
            Err(EvalFailure::Other(e)) => return Err(Err(e)),
        }
    }
    Ok(out)
}

/// How a failed evaluation ends: its message (already in Nix's format) and exit code 1.
fn failed(e: EvalFailure) -> anyhow::Result<ExitCode> {
    match e {
        EvalFailure::Eval(msg) => {
            eprintln!("{msg}");
            Ok(ExitCode::from(1))
        }
        EvalFailure::Other(e) => Err(e),
    }
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

fn print_trace(msg: &str) {
    eprintln!("{msg}");
}

/// Evaluates and returns what to print.
fn run(args: CommonArgs, mode: Mode, store_dir: Option<String>) -> Result<String, EvalFailure> {
    if args.expr.is_none() && args.file.is_none() {
        return Err(anyhow::anyhow!("nothing to evaluate: give a FILE or -E EXPR").into());
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut nix_path = Vec::new();
    let mut add_entry = |e: &str| {
        if e.is_empty() {
            return;
        }
        let (prefix, path) = e.split_once('=').unwrap_or(("", e));
        // Relative entries are relative to the working directory, as in Nix; URLs stay as they are.
        let path = if path.contains("://") || path.starts_with('/') {
            path.to_string()
        } else {
            cwd.join(path).to_string_lossy().into_owned()
        };
        nix_path.push((prefix.to_string(), path));
    };
    for e in &args.include {
        add_entry(e);
    }
    if let Ok(np) = std::env::var("NIX_PATH") {
        for e in np.split(':') {
            add_entry(e);
        }
    }
    let stdin_text = match &args.file {
        Some(f) if f.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading standard input")?;
            Some(s)
        }
        _ => None,
    };
    let config = StoreConfig::from_arg(args.store.as_deref()).map_err(anyhow::Error::from)?;
    let store_dir = store_dir.unwrap_or_else(|| config.store_dir.to_string());
    let settings = Settings {
        store_dir: store_dir.trim_end_matches('/').to_string(),
        nix_path,
        pipe_operators: args.pipe_operators,
        current_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        read_only: matches!(mode, Mode::Eval { .. }),
        ..Settings::default()
    };
    let show_trace = args.show_trace;
    let outcome = eval::with_big_stack(move || -> Result<String, String> {
        let io = StoreIo::new(config, print_trace);
        let mut ev = Evaluator::new(Box::new(io), settings);
        let out = evaluate(&mut ev, &args, mode, stdin_text.as_deref(), &cwd, show_trace);
        finish(ev);
        out
    })
    .context("starting the evaluation thread")?;
    outcome.map_err(EvalFailure::Eval)
}

/// Ends a run without freeing what the evaluator holds: the process exits after printing, and freeing every
/// syntax tree, thunk and set of the run would cost as much as a tenth of a run over a large file. The store
/// handle is still dropped, so that its temporary roots and scratch directories are removed.
fn finish(mut ev: Evaluator) {
    drop(std::mem::replace(&mut ev.io, Box::new(eval::FsIo::new(PathBuf::new(), "/nix/store"))));
    std::mem::forget(ev);
}

/// Evaluates what the arguments name and renders it for `mode`.
fn evaluate(
    ev: &mut Evaluator,
    args: &CommonArgs,
    mode: Mode,
    stdin_text: Option<&str>,
    cwd: &std::path::Path,
    show_trace: bool,
) -> Result<String, String> {
    let render = |e: eval::EvalError| e.render(show_trace);
    let cwd_s = cwd.to_string_lossy().into_owned();
    let mut v = if let Some(text) = &args.expr {
        ev.eval_str(text, &cwd_s).map_err(render)?
    } else if let Some(text) = stdin_text {
        let e = ev.compile("«stdin»", text, &cwd_s, None).map_err(render)?;
        let env = std::rc::Rc::new(eval::value::Env::root());
        ev.eval(&e, &env).map_err(render)?
    } else {
        let f = args.file.as_ref().map(|f| cwd.join(f)).unwrap_or_default();
        let f = eval::compile::canon_path(&f.to_string_lossy());
        ev.eval_file(&f).map_err(render)?
    };
    v = apply_auto_args(ev, v, args, &cwd_s).map_err(render)?;
    for path in &args.attr {
        v = select_path(ev, v, path).map_err(render)?;
    }
    // As in `finish`: the value is the whole result graph, and the process ends after printing it.
    let v = ManuallyDrop::new(v);
    match mode {
        Mode::Eval { strict, json, xml } => {
            if strict {
                ev.force_deep(&v).map_err(render)?;
            }
            if json {
                let mut ctx = Default::default();
                let s = eval::builtins::json::to_json(ev, &v, eval::source::Pos::none(), &mut ctx, false)
                    .map_err(render)?;
                Ok(format!("{s}\n"))
            } else if xml {
                let mut ctx = Default::default();
                let mut out = String::from("<?xml version='1.0' encoding='utf-8'?>\n<expr>\n");
                eval::builtins::json::to_xml(ev, &v, eval::source::Pos::none(), 1, &mut out, &mut ctx)
                    .map_err(render)?;
                out.push_str("</expr>\n");
                Ok(out)
            } else {
                Ok(format!("{}\n", eval::print::print_value(&v)))
            }
        }
        Mode::Instantiate | Mode::Build => {
            let mut out = String::new();
            collect_drvs(ev, &v, &mut out, true, matches!(mode, Mode::Build)).map_err(render)?;
            Ok(out)
        }
    }
}

fn apply_auto_args(ev: &mut Evaluator, v: Value, args: &CommonArgs, cwd: &str) -> eval::Result<Value> {
    let f = ev.force(&v)?;
    let Value::Lambda(c) = &f else { return Ok(f) };
    if !matches!(c.def.param, eval::compile::Param::Formals { .. }) {
        return Ok(f);
    }
    let mut entries = Vec::new();
    for pair in args.arg.chunks(2) {
        let val = ev.eval_str(&pair[1], cwd)?;
        entries.push(eval::value::Attr {
            name: eval::sym::Sym::new(&pair[0]),
            value: val,
            pos: Default::default(),
        });
    }
    for pair in args.argstr.chunks(2) {
        entries.push(eval::value::Attr {
            name: eval::sym::Sym::new(&pair[0]),
            value: Value::str(pair[1].clone()),
            pos: Default::default(),
        });
    }
    // Only the formals the function accepts are passed, as nix-instantiate does.
    if let eval::compile::Param::Formals { formals, ellipsis, .. } = &c.def.param
        && !ellipsis
    {
        entries.retain(|e| formals.iter().any(|(n, _)| *n == e.name));
    }
    let attrs = Value::attrs(eval::value::Attrs::from_unsorted(entries));
    ev.call(f, attrs, Default::default())
}

fn select_path(ev: &mut Evaluator, mut v: Value, path: &str) -> eval::Result<Value> {
    if path.is_empty() {
        return Ok(v);
    }
    for part in path.split('.') {
        let cur = ev.force(&v)?;
        v = match &cur {
            Value::Attrs(a) => match a.get_str(part) {
                Some(x) => ev.force(&x.clone())?,
                None => {
                    return Err(eval::EvalError::eval(
                        format!("attribute '{part}' in selection path '{path}' not found"),
                        Default::default(),
                    ));
                }
            },
            Value::List(l) => {
                let i: usize = part.parse().map_err(|_| {
                    eval::EvalError::eval(
                        format!("'{part}' in selection path '{path}' is not a list index"),
                        Default::default(),
                    )
                })?;
                let x = l.get(i).cloned().ok_or_else(|| {
                    eval::EvalError::eval(
                        format!("list index {i} in selection path '{path}' is out of range"),
                        Default::default(),
                    )
                })?;
                ev.force(&x)?
            }
            other => {
                return Err(eval::EvalError::eval(
                    format!(
                        "the expression selected by the selection path '{path}' should be a set but is {}",
                        other.type_of()
                    ),
                    Default::default(),
                ));
            }
        };
    }
    Ok(v)
}

fn collect_drvs(
    ev: &mut Evaluator,
    v: &Value,
    out: &mut String,
    top: bool,
    with_output: bool,
) -> eval::Result<()> {
    match ev.force(v)? {
        Value::Attrs(a) => {
            if ev.is_derivation(&a)? {
                let d = a.get_str("drvPath").cloned().unwrap_or(Value::Null);
                let s = ev.force_str(&d, Default::default())?;
                out.push_str(&s);
                if with_output {
                    let o = a.get_str("outputName").cloned().unwrap_or_else(|| Value::str("out".to_owned()));
                    out.push('!');
                    out.push_str(&ev.force_str(&o, Default::default())?);
                }
                out.push('\n');
                return Ok(());
            }
            let recurse = top
                || match a.get_str("recurseForDerivations") {
                    Some(r) => ev.force_bool(&r.clone(), Default::default())?,
                    None => false,
                };
            if recurse {
                for e in &a.entries {
                    collect_drvs(ev, &e.value, out, false, with_output)?;
                }
            }
        }
        Value::List(l) => {
            for x in l.iter() {
                collect_drvs(ev, x, out, false, with_output)?;
            }
        }
        _ => {}
    }
    Ok(())
}
