//! The conformance suite: every `.nix` file under `tests/conformance/{cases,newer,notyetpassing}` is one test,
//! evaluated as `nix-instantiate --eval --strict FILE` would be, and compared with its `NAME.exp` (the printed value
//! plus a newline) or `NAME.err` (the normalised first error line; see `normalise_error`).
//!
//! `cases/` expectations come from Nix 2.8 through `generate.sh`; `newer/` expectations are hand-written from the
//! current Nix manual. A case in `notyetpassing/` must fail: when it starts passing, its test fails and says to move
//! it, so that the suite always records what works.

use std::path::{Path, PathBuf};

use eval::{ErrorKind, Evaluator, FsIo, Settings};
use libtest_mimic::{Arguments, Failed, Trial};

/// What a case expects.
enum Expect {
    Value(String),
    Error(String),
}

/// The outcome of evaluating a case with our evaluator.
enum Outcome {
    Value(String),
    Error { line: String, parse: bool },
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut trials = Vec::new();
    for (dir, must_fail) in [("cases", false), ("newer", false), ("notyetpassing", true)] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "nix"));
        files.sort();
        for file in files {
            let name = format!("{dir}::{}", file.file_stem().unwrap_or_default().to_string_lossy());
            let root = root.clone();
            trials.push(Trial::test(name, move || run_case(&root, &file, must_fail)));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn run_case(root: &Path, file: &Path, must_fail: bool) -> Result<(), Failed> {
    let expect = read_expectation(file)?;
    // Such an expectation would only hold in the checkout that generated it.
    if let Expect::Value(v) = &expect
        && let Some(checkout) = root.parent().and_then(|p| p.parent()).and_then(|p| p.parent())
        && v.contains(&*checkout.to_string_lossy())
    {
        return Err(format!(
            "{}: the expected value contains the absolute path {}",
            file.display(),
            checkout.display()
        )
        .into());
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    // `# flags: F G` enables the experimental features F and G for the case.
    let features: Vec<String> = header_lines(&text)
        .filter_map(|l| l.strip_prefix("# flags:"))
        .flat_map(|f| f.split_whitespace().map(str::to_string))
        .collect();
    let outcome = evaluate(root, file, features)?;
    let verdict = compare(&expect, &outcome);
    match (verdict, must_fail) {
        (Ok(()), false) => Ok(()),
        (Err(msg), false) => Err(msg.into()),
        (Ok(()), true) => Err(format!(
            "{} now passes: move it (and its expectation file) out of notyetpassing/ into cases/ or newer/",
            file.display()
        )
        .into()),
        (Err(_), true) => Ok(()),
    }
}

/// The comment lines at the top of a case, where directives live.
fn header_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().take_while(|l| l.starts_with('#'))
}

fn read_expectation(file: &Path) -> Result<Expect, Failed> {
    let exp = file.with_extension("exp");
    let err = file.with_extension("err");
    match (std::fs::read_to_string(&exp), std::fs::read_to_string(&err)) {
        (Ok(v), Err(_)) => Ok(Expect::Value(v)),
        (Err(_), Ok(e)) => Ok(Expect::Error(e.trim_end().to_string())),
        (Ok(_), Ok(_)) => Err(format!("{} has both a .exp and a .err file", file.display()).into()),
        (Err(_), Err(_)) => Err(format!("{} has neither a .exp nor a .err file", file.display()).into()),
    }
}

fn evaluate(root: &Path, file: &Path, features: Vec<String>) -> Result<Outcome, Failed> {
    let store = tempfile::tempdir().map_err(|e| format!("creating a temporary store: {e}"))?;
    let store_root = store.path().to_path_buf();
    let path = file.to_string_lossy().into_owned();
    let root = root.to_string_lossy().into_owned();
    let outcome = eval::with_big_stack(move || {
        let io = FsIo::new(store_root, "/nix/store");
        let settings = Settings {
            store_dir: "/nix/store".to_string(),
            nix_path: Vec::new(),
            features: features.into_iter().collect(),
            current_time: 0,
            read_only: true,
            ..Settings::default()
        };
        let mut ev = Evaluator::new(Box::new(io), settings);
        let result = ev.eval_file(&path).and_then(|v| {
            ev.force_deep(&v)?;
            Ok(v)
        });
        match result {
            Ok(v) => Outcome::Value(format!("{}\n", eval::print::print_value(&v))),
            Err(e) => Outcome::Error {
                line: normalise_error(&e.render(false), &root),
                parse: e.kind == ErrorKind::Parse,
            },
        }
    })
    .map_err(|e| format!("evaluation thread: {e}"))?;
    drop(store);
    Ok(outcome)
}

/// The part of an error that is compared: its first line, with every `FILE:LINE:COL` or `«string»:LINE:COL`
/// position replaced by `<pos>` (Nix 2.8 and current Nix differ in columns) and the suite's directory replaced by
/// `<dir>`. `generate.sh` applies the same rules to Nix's output.
fn normalise_error(rendered: &str, root: &str) -> String {
    let line = rendered.lines().find(|l| l.starts_with("error:")).unwrap_or("").replace(root, "<dir>");
    let re = regex::Regex::new(r"(«[a-z]+»|<dir>[^ :]*|/[^ :]*):[0-9]+:[0-9]+").expect("valid pattern");
    re.replace_all(&line, "<pos>").trim_end().to_string()
}

fn compare(expect: &Expect, got: &Outcome) -> Result<(), String> {
    match (expect, got) {
        (Expect::Value(want), Outcome::Value(have)) if want == have => Ok(()),
        (Expect::Value(want), Outcome::Value(have)) => {
            Err(format!("value differs\n  expected: {}\n       got: {}", want.trim_end(), have.trim_end()))
        }
        (Expect::Value(want), Outcome::Error { line, .. }) => {
            Err(format!("expected the value {} but evaluation failed: {line}", want.trim_end()))
        }
        (Expect::Error(want), Outcome::Value(have)) => {
            Err(format!("expected the error `{want}` but got the value {}", have.trim_end()))
        }
        // Syntax errors come from Nix's bison grammar, whose token names we do not imitate: only the kind counts.
        (Expect::Error(want), Outcome::Error { parse, line }) if want.starts_with("error: syntax error") => {
            if *parse {
                Ok(())
            } else {
                Err(format!("expected a syntax error but got `{line}`"))
            }
        }
        (Expect::Error(want), Outcome::Error { line, .. }) if want == line => Ok(()),
        (Expect::Error(want), Outcome::Error { line, .. }) => {
            Err(format!("error differs\n  expected: {want}\n       got: {line}"))
        }
    }
}
