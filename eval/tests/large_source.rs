//! Sources large enough that the compiler tokenizes them on a second thread while rnix parses (`compile::parse`):
//! the result and the positions of errors must be those of the one-thread path, whatever the batch boundaries.

use eval::{Evaluator, FsIo, Settings};

/// Evaluates `text` strictly; the printed value or the rendered error.
fn evaluate(text: String) -> Result<String, String> {
    eval::with_big_stack(move || {
        let store = std::env::temp_dir().join("fhskit-eval-large-source-test");
        let settings = Settings { read_only: true, ..Settings::default() };
        let mut ev = Evaluator::new(Box::new(FsIo::new(store, "/nix/store")), settings);
        let v = ev.eval_str(&text, "/").map_err(|e| e.render(false))?;
        ev.force_deep(&v).map_err(|e| e.render(false))?;
        Ok(eval::print::print_value(&v))
    })
    .unwrap()
}

/// A `let` of `n` bindings, each a string interpolating the one before, and a sum over all of them.
fn source(n: usize) -> String {
    let mut s = String::from("let\n  v0 = \"start\";\n");
    for i in 1..n {
        s.push_str(&format!("  v{i} = \"${{v{}}}-{i}\"; # a comment with // and /* */ in it\n", i - 1));
    }
    s.push_str("  lens = [");
    for i in 0..n {
        s.push_str(&format!(" (builtins.stringLength v{i})"));
    }
    s.push_str(" ];\nin builtins.foldl' (a: b: a + b) 0 lens\n");
    s
}

#[test]
fn a_large_source_evaluates_as_a_small_one() {
    let n = 3000;
    let text = source(n);
    assert!(text.len() > 256 << 10, "{} bytes is not large", text.len());
    let expected: usize =
        (0..n).map(|i| "start".len() + (1..=i).map(|j| 1 + j.to_string().len()).sum::<usize>()).sum();
    assert_eq!(evaluate(text).unwrap(), expected.to_string());
}

#[test]
fn an_error_deep_in_a_large_source_has_its_position() {
    let mut text = source(3000);
    let line = text.lines().count() + 1;
    text.push_str("  + }\n");
    let err = evaluate(text).unwrap_err();
    assert!(err.starts_with("error: syntax error, unexpected '}'"), "{err}");
    assert!(err.contains(&format!("«string»:{line}:5")), "{err}");
}
